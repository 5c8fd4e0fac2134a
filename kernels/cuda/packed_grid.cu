// Scalar-grid kernels on the GPU. GEMV: warps own output rows; 1-, 2-, 3-, 4- and 8-bit codes with cols and
// groups in multiples of 8 take the coalesced chunk path below, other layouts (5..7-bit widths, trits, odd
// column counts) a bounds-checked byte path, one warp per row.
#include <algorithm>

#include "packed_cuda.cuh"
#include "quench_kernels/packed_grid.h"

namespace quench::kernels {
namespace {

using namespace cuda_detail;

constexpr int kWarpsPerBlock = 4;

struct GridArgs {
    GridView w;
    int64_t groups;
    float off0, mul;
};

GridArgs args_of(const GridView& w) {
    const GridLevel l = grid_level(w);
    return {w, grid_groups(w), l.offset, l.mul};  // the last group of a row may be shorter
}

__device__ __forceinline__ float group_scale(const GridArgs& a, int64_t r, int64_t g) {
    return half_bits_to_float(__ldg(a.w.scales + r * a.groups + g));
}

__device__ __forceinline__ float group_offset(const GridArgs& a, int64_t r, int64_t g) {
    return a.w.kind == GridKind::AsymInt ? static_cast<float>(code_at(a.w.zeros, a.w.zero_bytes, a.w.bits, r * a.groups + g))
                                         : a.off0;
}

__device__ __forceinline__ uint32_t code_of(const GridArgs& a, int64_t i) {
    return a.w.kind == GridKind::Ternary ? trit_at(a.w.codes, i) : code_at(a.w.codes, a.w.code_bytes, a.w.bits, i);
}

// Core's order: (c - off) * mul is exact, * s rounds once; the _rn intrinsics keep nvcc from fusing.
template <bool F16>
__global__ void dequant_kernel(GridArgs a, void* out) {
    const int64_t n = a.w.rows * a.w.cols;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / a.w.cols, g = (i - r * a.w.cols) / a.w.group;
        const float q = __fmul_rn(__fsub_rn(static_cast<float>(code_of(a, i)), group_offset(a, r, g)), a.mul);
        const float v = __fmul_rn(q, group_scale(a, r, g));
        if (F16) static_cast<__half*>(out)[i] = __float2half_rn(v);
        else static_cast<float*>(out)[i] = v;
    }
}

template <int NB>
__device__ __forceinline__ void store_row(float (&sum)[NB], float* y, int64_t rows, int64_t r, int lane) {
#pragma unroll
    for (int b = 0; b < NB; ++b) {
        const float t = warp_sum(sum[b]);
        if (lane == 0) y[b * rows + r] = t;
    }
}

// sum[b] += s * sum_k v[k] x[b][c + k] for one block of eight codes.
template <int NB>
__device__ __forceinline__ void block8(const float (&v)[8], float s, const float* x, int64_t cols, int64_t c,
                                      bool vec_x, float (&sum)[NB]) {
#pragma unroll
    for (int b = 0; b < NB; ++b) {
        const float* xb = x + b * cols + c;
        float d;
        if (vec_x) {
            const float4 x0 = __ldg(reinterpret_cast<const float4*>(xb)), x1 = __ldg(reinterpret_cast<const float4*>(xb) + 1);
            d = v[0] * x0.x + v[1] * x0.y + v[2] * x0.z + v[3] * x0.w + v[4] * x1.x + v[5] * x1.y + v[6] * x1.z + v[7] * x1.w;
        } else {
            d = 0.f;
#pragma unroll
            for (int k = 0; k < 8; ++k) d += v[k] * __ldg(xb + k);
        }
        sum[b] = fmaf(d, s, sum[b]);
    }
}

// The fast path: eight consecutive codes per lane step (BITS bytes, one load for widths 1, 2, 4 and 8),
// adjacent lanes on adjacent columns so that codes and x are read coalesced (x by the whole warp as one
// contiguous span: strided per-lane spans cost one L1 pass per line touched and were the bottleneck);
// U steps are loaded before any is used, to keep several requests per lane in flight; each warp owns R
// rows, so every x value loaded into registers serves R rows. Needs cols and group multiples of 8 and
// 16-byte aligned codes and x.
template <int BITS>
__device__ __forceinline__ uint64_t load_codes8(const uint8_t* p) {
    if constexpr (BITS == 1) return __ldg(p);
    else if constexpr (BITS == 2) return __ldg(reinterpret_cast<const uint16_t*>(p));
    else if constexpr (BITS == 4) return __ldg(reinterpret_cast<const uint32_t*>(p));
    else if constexpr (BITS == 8) return __ldg(reinterpret_cast<const unsigned long long*>(p));
    else return uint64_t(__ldg(p)) | uint64_t(__ldg(p + 1)) << 8 | uint64_t(__ldg(p + 2)) << 16;  // 3 bits
}

// Code j of an eight-code field as an exact fp32 integer: OR-ing it into the mantissa of 2^23 and
// subtracting 2^23 avoids the quarter-rate integer-to-float conversion.
template <int BITS>
__device__ __forceinline__ float code_value(uint64_t field, int j) {
    const auto v = static_cast<uint32_t>(field >> (j * BITS)) & ((1u << BITS) - 1u);
    return __uint_as_float(0x4b000000u | v) - 8388608.0f;
}

template <int BITS, int NB, int R>
__global__ void gemv_chunk8_kernel(GridArgs a, const float* __restrict__ x, float* __restrict__ y) {
    constexpr int U = 4;
    const int64_t r0 = (blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / kWarp) * R;
    const int lane = threadIdx.x % kWarp;
    if (r0 >= a.w.rows) return;
    const int64_t rows = a.w.rows, cols = a.w.cols, chunks = cols / 8, row_bytes = cols * BITS / 8;
    const uint32_t G = static_cast<uint32_t>(a.w.group);
    float acc[R][NB] = {};
    for (int64_t k0 = lane; k0 < chunks; k0 += kWarp * U) {
        uint64_t field[U][R];
#pragma unroll
        for (int u = 0; u < U; ++u)
#pragma unroll
            for (int i = 0; i < R; ++i) {
                const int64_t k = k0 + kWarp * u, r = min(r0 + i, rows - 1);
                field[u][i] = k < chunks ? load_codes8<BITS>(a.w.codes + r * row_bytes + k * BITS) : 0;
            }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int64_t k = k0 + kWarp * u;
            if (k >= chunks) break;
            const int64_t c = 8 * k;
            const uint32_t g = static_cast<uint32_t>(c) / G;
            float4 x0[NB], x1[NB];
#pragma unroll
            for (int b = 0; b < NB; ++b) {
                x0[b] = __ldg(reinterpret_cast<const float4*>(x + b * cols + c));
                x1[b] = __ldg(reinterpret_cast<const float4*>(x + b * cols + c) + 1);
            }
#pragma unroll
            for (int i = 0; i < R; ++i) {
                const int64_t r = min(r0 + i, rows - 1);
                float off = a.off0;
                if (a.w.kind == GridKind::AsymInt) {
                    // Zero codes of widths 1, 2, 4, 8 never cross a byte: one byte read instead of a word window.
                    const int64_t zb = (r * a.groups + g) * BITS;
                    off = BITS == 3 ? group_offset(a, r, g)
                                    : static_cast<float>((__ldg(a.w.zeros + (zb >> 3)) >> (zb & 7)) & ((1u << BITS) - 1u));
                }
                const float s = group_scale(a, r, g) * a.mul, nos = -off * s;
                float v[8];
#pragma unroll
                for (int j = 0; j < 8; ++j) v[j] = fmaf(code_value<BITS>(field[u][i], j), s, nos);
#pragma unroll
                for (int b = 0; b < NB; ++b) {
                    float t = acc[i][b];
                    t = fmaf(v[0], x0[b].x, t), t = fmaf(v[1], x0[b].y, t), t = fmaf(v[2], x0[b].z, t), t = fmaf(v[3], x0[b].w, t);
                    t = fmaf(v[4], x1[b].x, t), t = fmaf(v[5], x1[b].y, t), t = fmaf(v[6], x1[b].z, t), t = fmaf(v[7], x1[b].w, t);
                    acc[i][b] = t;
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int b = 0; b < NB; ++b) {
            const float t = warp_sum(acc[i][b]);
            if (lane == 0 && r0 + i < rows) y[b * rows + r0 + i] = t;
        }
}

// Any layout: eight codes per lane step through bounds-checked reads (trits through a shared table of each
// byte's five trits), then the column tail.
template <int NB>
__global__ void gemv_generic_kernel(GridArgs a, const float* __restrict__ x, float* __restrict__ y) {
    __shared__ uint16_t trit_table[256];
    const bool trits = a.w.kind == GridKind::Ternary;
    if (trits)
        for (int i = threadIdx.x; i < 256; i += blockDim.x) trit_table[i] = trit_fields(i);
    __syncthreads();
    const int64_t r = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (r >= a.w.rows) return;
    const int64_t cols = a.w.cols, G = a.w.group, blocks = cols / 8, base = r * cols;
    const bool one_group_per_block = G % 8 == 0;
    const bool vec_x = cols % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    const int width = trits ? 2 : a.w.bits;
    const uint32_t mask = (1u << width) - 1u;
    float sum[NB] = {};
    for (int64_t k = lane; k < blocks; k += kWarp) {
        const int64_t c = 8 * k, bit = (base + c) * a.w.bits;
        const uint64_t field = trits ? trits8(a.w.codes, a.w.code_bytes, trit_table, base + c)
                                     : load_u64(a.w.codes, a.w.code_bytes, bit >> 3) >> (bit & 7);
        float code[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) code[j] = static_cast<float>(uint32_t(field >> (j * width)) & mask);
        if (one_group_per_block) {
            const int64_t g = c / G;
            const float off = group_offset(a, r, g);
            float v[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) v[j] = code[j] - off;
            block8<NB>(v, group_scale(a, r, g) * a.mul, x, cols, c, vec_x, sum);
        } else {
            for (int j = 0; j < 8; ++j) {
                const int64_t g = (c + j) / G;
                const float v = code[j] - group_offset(a, r, g), s = group_scale(a, r, g) * a.mul;
#pragma unroll
                for (int b = 0; b < NB; ++b) sum[b] = fmaf(v * __ldg(x + b * cols + c + j), s, sum[b]);
            }
        }
    }
    const int64_t c = blocks * 8 + lane;
    if (c < cols) {
        const int64_t g = c / G;
        const float v = static_cast<float>(code_of(a, base + c)) - group_offset(a, r, g), s = group_scale(a, r, g) * a.mul;
#pragma unroll
        for (int b = 0; b < NB; ++b) sum[b] = fmaf(v * __ldg(x + b * cols + c), s, sum[b]);
    }
    store_row<NB>(sum, y, a.w.rows, r, lane);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// R rows per warp: one for a single vector (most warps in flight), more as the batch grows (x reuse).
template <int BITS, int NB>
void launch_chunk8(const GridArgs& a, const float* x, float* y) {
    constexpr int R = NB == 1 ? 1 : NB <= 3 ? 2 : 4;
    const unsigned blocks = blocks_for(a.w.rows, kWarpsPerBlock * R);
    gemv_chunk8_kernel<BITS, NB, R><<<blocks, kWarpsPerBlock * kWarp>>>(a, x, y);
}

template <int NB>
void launch_gemv(const GridArgs& a, const float* x, float* y) {
    const GridView& w = a.w;
    const bool chunked = w.kind != GridKind::Ternary && w.bits != 5 && w.bits != 6 && w.bits != 7 && w.cols % 8 == 0 &&
                         w.group % 8 == 0 && w.cols < (int64_t(1) << 31) && aligned16(w.codes) && aligned16(x);
    if (chunked) {
        switch (w.bits) {
            case 1: launch_chunk8<1, NB>(a, x, y); break;
            case 2: launch_chunk8<2, NB>(a, x, y); break;
            case 3: launch_chunk8<3, NB>(a, x, y); break;
            case 4: launch_chunk8<4, NB>(a, x, y); break;
            default: launch_chunk8<8, NB>(a, x, y); break;
        }
    } else {
        gemv_generic_kernel<NB><<<blocks_for(w.rows, kWarpsPerBlock), kWarpsPerBlock * kWarp>>>(a, x, y);
    }
    check_launch("grid_gemv_cuda");
}

void dequantize(const GridView& w, void* out, bool f16) {
    validate(w);
    if (!out) throw std::invalid_argument("grid view: output pointer is null");
    const GridArgs a = args_of(w);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(w.rows * w.cols, 256), 1 << 16));
    if (f16) dequant_kernel<true><<<blocks, 256>>>(a, out);
    else dequant_kernel<false><<<blocks, 256>>>(a, out);
    check_launch("grid_dequantize_cuda");
}

}  // namespace

void grid_dequantize_f32_cuda(const GridView& w, float* out) { dequantize(w, out, false); }

void grid_dequantize_f16_cuda(const GridView& w, uint16_t* out) { dequantize(w, out, true); }

void grid_gemv_cuda(const GridView& w, const float* x, float* y, int64_t batch) {
    validate(w);
    if (batch < 1 || batch > 8) throw std::invalid_argument("grid view: batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) throw std::invalid_argument("grid view: x or y is null");
    const GridArgs a = args_of(w);
    switch (batch) {
        case 1: return launch_gemv<1>(a, x, y);
        case 2: return launch_gemv<2>(a, x, y);
        case 3: return launch_gemv<3>(a, x, y);
        case 4: return launch_gemv<4>(a, x, y);
        case 5: return launch_gemv<5>(a, x, y);
        case 6: return launch_gemv<6>(a, x, y);
        case 7: return launch_gemv<7>(a, x, y);
        default: return launch_gemv<8>(a, x, y);
    }
}

}  // namespace quench::kernels
