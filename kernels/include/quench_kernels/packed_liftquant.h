#pragma once
// LiftQuant weights (core/quant/liftquant.cpp) read from their stored parts. Each d-weight chunk j of row r
// is M y with y in {+-1}^D, then the row is scaled, rotated and unscaled:
//     W[r] = ((Y[r] M^T) * scale[r]) H diag(sign) diag(1 / act_scale),    H: block Hadamard, block = cols & -cols
// Dequantization repeats core's operations in core's order (sequential sums over k, butterflies, one
// division by fp32(sqrt(block))), so it equals Codec::dequantize bit for bit.
//
// The GEMV never forms W: it moves the transforms onto x, x' = H (sign * x / act_scale), projects each chunk
// once per vector, p[j][k] = sum_i M[i][k] x'[j d + i] (D values per chunk), and then every row is
//     y[r] = scale[r] * sum_{j,k} y[r][j][k] p[j][k],
// a sign-only sum over ceil(cols / d) * D terms: the binary grid GEMV (packed_grid.h) over the lift codes.
#include <cstdint>

#include "quench_kernels/packed_common.h"

namespace quench::kernels {

struct LiftView {
    int64_t rows = 0, cols = 0;  // a row is ceil(cols / d) chunks; the last one's pad columns are no weights
    int D = 0, d = 0;            // D sign bits per chunk of d weights, 1 <= d < D <= 32
    const uint8_t* codes = nullptr;  // part "codes": bit (r, j, k) at (r chunks + j) D + k, set = +1, LSB first
    int64_t code_bytes = 0;
    const uint16_t* scales = nullptr;     // part "scales": fp16 [rows]
    const uint16_t* M = nullptr;          // part "M": fp16 [d, D] row-major
    const uint8_t* signs = nullptr;       // part "signs": 1 bit per column, set = +1; null when had is off
    const uint16_t* act_scale = nullptr;  // part "act_scale": fp16 [cols]; null when awq is off
};

// std::invalid_argument naming the field unless the view is consistent.
void validate(const LiftView& w);

// Chunks per row: ceil(cols / d).
int64_t lift_chunks(const LiftView& w);

void lift_dequantize_f32(const LiftView& w, float* out, const CpuOptions& opt = {});
void lift_dequantize_f16(const LiftView& w, uint16_t* out, const CpuOptions& opt = {});
// y [batch, rows] = W x for x [batch, cols], batch 1..8.
void lift_gemv(const LiftView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});

#ifdef QUENCH_HAVE_CUDA
// Device pointers throughout; asynchronous on the default stream (see packed_grid.h). The GEMV allocates
// its projected inputs with cudaMallocAsync.
void lift_dequantize_f32_cuda(const LiftView& w, float* out);
void lift_dequantize_f16_cuda(const LiftView& w, uint16_t* out);
void lift_gemv_cuda(const LiftView& w, const float* x, float* y, int64_t batch);
#endif

}  // namespace quench::kernels
