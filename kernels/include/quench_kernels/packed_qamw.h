#pragma once
// QAM-W weights with the joint 2-D codebook (core/quant/qamw.cpp, coding=joint) read from their stored
// parts. Each pair of adjacent coordinates (2t, 2t + 1) of a row is one k-bit code into a codebook of 2^k
// fp16 points, and
//     W[r] = (H(P[r] / sqrt(cols)) * sign) * norm[r] / act_scale,    H: orthonormal block Hadamard,
// P[r] the row's codebook points. Dequantization repeats those operations in core's order (butterflies,
// divisions by fp32 square roots), so it equals Codec::dequantize bit for bit.
//
// The GEMV moves the transforms onto x, x' = H(sign * x / act_scale) / sqrt(cols), and then each row is
//     y[r] = norm[r] * sum_t P[r][t] . (x'[2t], x'[2t + 1]):
// one codebook lookup per pair (a 64-bit gather of the two fp32 coordinates on the AVX2 path), no weights.
#include <cstdint>

#include "quench_kernels/packed_common.h"

namespace quench::kernels {

struct QamwView {
    int64_t rows = 0, cols = 0;     // cols even and a multiple of block
    int k = 0;                      // bits per pair code, 2..16
    int64_t block = 0;              // Hadamard block: a power of two dividing cols
    const uint8_t* codes = nullptr; // part "codes": k-bit codes LSB first, pair t of row r at index r cols / 2 + t
    int64_t code_bytes = 0;
    const uint16_t* norms = nullptr;     // part "norms": fp16 [rows]
    const uint16_t* codebook = nullptr;  // part "codebook": fp16 [2^k, 2] row-major
    const uint16_t* act_scale = nullptr; // part "act_scale": fp16 [cols], or null
    bool signs = false;                  // part "sign_seed" present: random column signs from sign_seed
    uint64_t sign_seed = 0;
};

void validate(const QamwView& w);  // std::invalid_argument naming the field

void qamw_dequantize_f32(const QamwView& w, float* out, const CpuOptions& opt = {});
void qamw_dequantize_f16(const QamwView& w, uint16_t* out, const CpuOptions& opt = {});
void qamw_gemv(const QamwView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});

// Column c's random sign (+1 or -1), core's random_signs(cols, seed)[c]: splitmix64, one draw per column.
inline float qamw_sign(uint64_t seed, int64_t c) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(c + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (z & 1) ? 1.0f : -1.0f;
}

#ifdef QUENCH_HAVE_CUDA
// Device pointers throughout; asynchronous on the default stream (see packed_grid.h).
void qamw_dequantize_f32_cuda(const QamwView& w, float* out);
void qamw_dequantize_f16_cuda(const QamwView& w, uint16_t* out);
void qamw_gemv_cuda(const QamwView& w, const float* x, float* y, int64_t batch);
#endif

}  // namespace quench::kernels
