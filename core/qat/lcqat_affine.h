#pragma once
// LC-QAT's training layer (docs/methods.md section 1(a), UniSVQ v0 TVQHadLinear): latent weights W_lat give
// u = kappa*W_lat + 1.5, kappa = sqrt(d_out + d_in)/2, and codes q = clamp(round(u), 0, 3) with the DGE
// surrogate gradient dq/du = min(3, (1/k)|2r - 1|^(1/k - 1)), r = u - clamp(floor(u), 0, 3), k = 5 (no
// clipping mask). The affine map A, b acts on the activations, so no codebook is built:
//     x' = H_in(su * x),  y'_o = sum_j q_oj . (A^T x'_j) + sum_j b . x'_j,  y = sv * H_out(y')
// which equals W x for the lattice codec's W = diag(sv) H_out Wt H_in diag(su). Trainable: W_lat, A, b, su, sv.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace quench {

constexpr double kLcqatDgeK = 5;

// Codes q(u) with the DGE backward (a LibTorch autograd function).
at::Tensor lcqat_dge_round(const at::Tensor& u, double k = kLcqatDgeK);
// The DGE derivative dq/du itself (tests, docs).
at::Tensor lcqat_dge_grad(const at::Tensor& u, double k = kLcqatDgeK);
// kappa for a [rows, cols] weight.
double lcqat_kappa(int64_t rows, int64_t cols);

// The layer's forward from its parameters (any float dtype). had_in / had_out: Hadamard block sizes (1 = none).
at::Tensor lcqat_linear(const at::Tensor& x, const at::Tensor& W_lat, const at::Tensor& A, const at::Tensor& b,
                        const at::Tensor& su, const at::Tensor& sv, int64_t had_in, int64_t had_out);

}  // namespace quench
