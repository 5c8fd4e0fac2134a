// QAM-W (joint codebook) on the GPU: dequantization as lookup -> butterflies -> elementwise finish in core's
// order; the GEMV transforms x once, then one warp per row looks up four pairs per lane step in a
// shared-memory copy of the codebook (global memory above k = 12, where it no longer fits).
#include "packed_cuda.cuh"
#include "quench_kernels/packed_qamw.h"

namespace quench::kernels {
namespace {

using namespace cuda_detail;

constexpr int kThreads = 256, kWarpsPerBlock = 4, kSharedK = 12;

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 16)); }

#define QK_FOR_EACH(e, n) \
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (n); e += int64_t(gridDim.x) * blockDim.x)

__device__ __forceinline__ float column_sign(uint64_t seed, int64_t c) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(c + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (z & 1) ? 1.0f : -1.0f;
}

__global__ void qamw_pairs_kernel(QamwView w, float* out, float sq) {
    QK_FOR_EACH(e, w.rows * w.cols) {
        const uint32_t code = code_at(w.codes, w.code_bytes, w.k, e / 2);
        out[e] = __fdiv_rn(half_bits_to_float(__ldg(w.codebook + 2 * code + e % 2)), sq);
    }
}

template <bool F16>
__global__ void qamw_finish_kernel(QamwView w, const float* in, void* out, float hn) {
    QK_FOR_EACH(e, w.rows * w.cols) {
        const int64_t c = e % w.cols;
        float v = __fdiv_rn(in[e], hn);
        if (w.signs) v = __fmul_rn(v, column_sign(w.sign_seed, c));
        v = __fmul_rn(v, half_bits_to_float(__ldg(w.norms + e / w.cols)));
        if (w.act_scale) v = __fdiv_rn(v, half_bits_to_float(__ldg(w.act_scale + c)));
        if (F16) static_cast<__half*>(out)[e] = __float2half_rn(v);
        else static_cast<float*>(out)[e] = v;
    }
}

__global__ void qamw_x_kernel(QamwView w, const float* x, float* xt, int64_t batch) {
    QK_FOR_EACH(e, batch * w.cols) {
        const int64_t c = e % w.cols;
        float v = x[e];
        if (w.act_scale) v /= half_bits_to_float(__ldg(w.act_scale + c));
        xt[e] = w.signs ? v * column_sign(w.sign_seed, c) : v;
    }
}

// y[b][r] = norm[r] * scale * sum_t P[r][t] . xt[b][2t : 2t + 2], four pairs per lane step.
template <int NB>
__global__ void qamw_gemv_kernel(QamwView w, const float* __restrict__ xt, float* __restrict__ y, float scale) {
    extern __shared__ float2 book_s[];
    const bool shared = w.k <= kSharedK;
    if (shared)
        for (int i = threadIdx.x; i < (1 << w.k); i += blockDim.x)
            book_s[i] = make_float2(half_bits_to_float(w.codebook[2 * i]), half_bits_to_float(w.codebook[2 * i + 1]));
    __syncthreads();
    const int64_t r = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (r >= w.rows) return;
    const int64_t pairs = w.cols / 2, quads = (pairs + 3) / 4;
    const uint32_t mask = (1u << w.k) - 1u;
    float sum[NB] = {};
    for (int64_t q = lane; q < quads; q += kWarp) {
        const int64_t t0 = 4 * q, bit = (r * pairs + t0) * w.k;
        const int n = pairs - t0 < 4 ? static_cast<int>(pairs - t0) : 4;
        // 4k + 7 <= 64 bits for k <= 14; wider codes read each pair on its own.
        const uint64_t field = w.k <= 14 ? load_u64(w.codes, w.code_bytes, bit >> 3) >> (bit & 7) : 0;
        for (int j = 0; j < n; ++j) {
            const uint32_t code = w.k <= 14 ? uint32_t(field >> (j * w.k)) & mask : code_at(w.codes, w.code_bytes, w.k, r * pairs + t0 + j);
            const float2 p = shared ? book_s[code]
                                    : make_float2(half_bits_to_float(__ldg(w.codebook + 2 * code)),
                                                  half_bits_to_float(__ldg(w.codebook + 2 * code + 1)));
#pragma unroll
            for (int b = 0; b < NB; ++b) {
                const float* xb = xt + b * w.cols + 2 * (t0 + j);
                sum[b] = fmaf(p.x, xb[0], fmaf(p.y, xb[1], sum[b]));
            }
        }
    }
    const float norm = half_bits_to_float(__ldg(w.norms + r)) * scale;
#pragma unroll
    for (int b = 0; b < NB; ++b) {
        const float t = warp_sum(sum[b]);
        if (lane == 0) y[b * w.rows + r] = t * norm;
    }
}

template <int NB>
void launch_gemv(const QamwView& w, const float* xt, float* y, float scale) {
    const std::size_t smem = w.k <= kSharedK ? (std::size_t(1) << w.k) * sizeof(float2) : 0;
    qamw_gemv_kernel<NB><<<blocks_for(w.rows, kWarpsPerBlock), kWarpsPerBlock * kWarp, smem>>>(w, xt, y, scale);
    check_launch("qamw_gemv_cuda");
}

void dequantize(const QamwView& w, void* out, bool f16) {
    validate(w);
    if (!out) throw std::invalid_argument("qamw view: output pointer is null");
    const int64_t n = w.rows * w.cols;
    Scratch scratch(f16 ? n * sizeof(float) : 0);
    float* tmp = f16 ? scratch.as<float>() : static_cast<float*>(out);
    qamw_pairs_kernel<<<grid_for(n), kThreads>>>(w, tmp, hadamard_norm(w.cols));
    check_launch("qamw_dequantize_cuda");
    fwht_rows(tmp, w.rows, w.cols, w.block);
    if (f16) qamw_finish_kernel<true><<<grid_for(n), kThreads>>>(w, tmp, out, hadamard_norm(w.block));
    else qamw_finish_kernel<false><<<grid_for(n), kThreads>>>(w, tmp, out, hadamard_norm(w.block));
    check_launch("qamw_dequantize_cuda");
}

}  // namespace

void qamw_dequantize_f32_cuda(const QamwView& w, float* out) { dequantize(w, out, false); }

void qamw_dequantize_f16_cuda(const QamwView& w, uint16_t* out) { dequantize(w, out, true); }

void qamw_gemv_cuda(const QamwView& w, const float* x, float* y, int64_t batch) {
    validate(w);
    if (batch < 1 || batch > 8) throw std::invalid_argument("qamw view: batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) throw std::invalid_argument("qamw view: x or y is null");
    Scratch xt(batch * w.cols * sizeof(float));
    qamw_x_kernel<<<grid_for(batch * w.cols), kThreads>>>(w, x, xt.as<float>(), batch);
    check_launch("qamw_gemv_cuda");
    fwht_rows(xt.as<float>(), batch, w.cols, w.block);
    const float scale = 1.0f / (hadamard_norm(w.block) * hadamard_norm(w.cols));
    switch (batch) {
        case 1: return launch_gemv<1>(w, xt.as<float>(), y, scale);
        case 2: return launch_gemv<2>(w, xt.as<float>(), y, scale);
        case 3: return launch_gemv<3>(w, xt.as<float>(), y, scale);
        case 4: return launch_gemv<4>(w, xt.as<float>(), y, scale);
        case 5: return launch_gemv<5>(w, xt.as<float>(), y, scale);
        case 6: return launch_gemv<6>(w, xt.as<float>(), y, scale);
        case 7: return launch_gemv<7>(w, xt.as<float>(), y, scale);
        default: return launch_gemv<8>(w, xt.as<float>(), y, scale);
    }
}

}  // namespace quench::kernels
