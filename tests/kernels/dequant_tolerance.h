#pragma once
// How far a packed kernel's dequantization may lie from core's Codec::dequantize of the same parts.
//
// Grids (scale * (code - zero)) and QAM-W (codebook lookup, butterflies, scalings) are chains of single IEEE
// operations in both: every step is correctly rounded on any CPU, so the two agree bit for bit.
// LiftQuant (sums of D signed entries of M) and LC-QAT (the 4 x 4 affine map, then Hadamard GEMMs) sum
// products in an order each side picks: core through LibTorch / BLAS, whose blocking and FMA use depend on
// the CPU (AVX-512, AVX2, default), the kernel in a fixed order of its own. Each side's error is at most
// gamma_n * m, where m is the same computation over the absolute values of every term and n the longest
// chain of roundings leading to the weight (Higham, Accuracy and Stability of Numerical Algorithms, 3.1;
// gamma_n = n u / (1 - n u), u = 2^-24), so the two differ by at most 2 gamma_n m.
#include <ATen/core/Tensor.h>

#include "quant/kernel_views.h"

namespace quench::test {

// Per-weight bound [rows, cols] (double) on |kernel - core|, or an undefined tensor where the two must be
// equal bit for bit.
at::Tensor dequant_tolerance(const KernelView& v);

}  // namespace quench::test
