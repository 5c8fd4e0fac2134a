#pragma once
// LC-QAT lattice weights (core/quant/lcqat_lattice.h) read from their stored parts:
//     W = diag(sv) H_out Wt H_in diag(su),    Wt[o, 4j + m] = sum_t A[m][t] q_t + b[m],
// q = (q0, q1, q2, q3) in {0..3}^4 the digits of one byte, index = 64 q0 + 16 q1 + 4 q2 + q3; H_in / H_out
// orthonormal block Walsh-Hadamard matrices over columns / rows (block 1 = none).
//
// Dequantization repeats core's arithmetic: its products are BLAS GEMMs (q A^T, then the Hadamards as dense
// matrices), which accumulate each output as one fused multiply-add chain in k order; the kernel does the
// same, so it equals Codec::dequantize bit for bit with core's BLAS (the tests check it).
//
// The GEMV moves everything onto x and y: x' = H_in (su * x); per chunk p_j = A^T x'_j (4 values) and the
// constant c = sum_j b . x'_j; the bytes read as a stream of 2-bit codes (q3, q2, q1, q0 per byte) make
// z = Wt x' the unsigned 2-bit grid GEMV over p plus c; then y = sv * (H_out z).
#include <cstdint>

#include "quench_kernels/packed_common.h"

namespace quench::kernels {

struct LatticeView {
    int64_t rows = 0, cols = 0;        // cols a multiple of 4
    int64_t had_in = 1, had_out = 1;   // powers of two dividing cols / rows (core's lcqat_blocks)
    const uint8_t* codes = nullptr;    // part "codes": one byte per 4 weights, row-major [rows, cols / 4]
    const float* A = nullptr;          // part "A": fp32 [4, 4] row-major
    const float* b = nullptr;          // part "b": fp32 [4]
    const uint16_t* su = nullptr;      // part "su": fp16 [cols]
    const uint16_t* sv = nullptr;      // part "sv": fp16 [rows]
};

void validate(const LatticeView& w);  // std::invalid_argument naming the field

void lattice_dequantize_f32(const LatticeView& w, float* out, const CpuOptions& opt = {});
void lattice_dequantize_f16(const LatticeView& w, uint16_t* out, const CpuOptions& opt = {});
void lattice_gemv(const LatticeView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});

#ifdef QUENCH_HAVE_CUDA
// Device pointers throughout; asynchronous on the default stream (see packed_grid.h).
void lattice_dequantize_f32_cuda(const LatticeView& w, float* out);
void lattice_dequantize_f16_cuda(const LatticeView& w, uint16_t* out);
void lattice_gemv_cuda(const LatticeView& w, const float* x, float* y, int64_t batch);
#endif

}  // namespace quench::kernels
