// LiftQuant on the GPU: dequantization as decode -> Hadamard butterflies -> elementwise finish, each in
// core's order; the GEMV projects x (transforms, then M per chunk) and hands the sign bits to the binary
// grid GEMV, exactly as the CPU path does.
#include "packed_cuda.cuh"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_liftquant.h"

namespace quench::kernels {
namespace {

using namespace cuda_detail;

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 16)); }

__device__ __forceinline__ bool bit_set(const uint8_t* p, int64_t i) { return (__ldg(p + (i >> 3)) >> (i & 7)) & 1u; }

// out[r][j d + i] = (sum_k +-M[i][k], in k order) * scale[r].
__global__ void lift_decode_kernel(LiftView w, float* out) {
    const int64_t n = w.rows * w.cols, chunks = (w.cols + w.d - 1) / w.d;  // the last chunk may be short
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = e / w.cols, c = e - r * w.cols, j = c / w.d;
        const int i = static_cast<int>(c - j * w.d);
        const int64_t bit0 = (r * chunks + j) * w.D;
        float acc = 0.f;
        for (int k = 0; k < w.D; ++k) {
            const float m = half_bits_to_float(__ldg(w.M + i * w.D + k));
            acc = __fadd_rn(acc, bit_set(w.codes, bit0 + k) ? m : -m);
        }
        out[e] = __fmul_rn(acc, half_bits_to_float(__ldg(w.scales + r)));
    }
}

// After the butterflies: / norm, * sign, / act_scale, then fp32 or fp16 out.
template <bool F16>
__global__ void lift_finish_kernel(LiftView w, const float* in, void* out, float norm) {
    const int64_t n = w.rows * w.cols;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t c = e % w.cols;
        float v = in[e];
        if (w.signs) v = __fmul_rn(__fdiv_rn(v, norm), bit_set(w.signs, c) ? 1.0f : -1.0f);
        if (w.act_scale) v = __fdiv_rn(v, half_bits_to_float(__ldg(w.act_scale + c)));
        if (F16) static_cast<__half*>(out)[e] = __float2half_rn(v);
        else static_cast<float*>(out)[e] = v;
    }
}

// xt[b][c] = sign[c] * x[b][c] / act_scale[c], before the butterflies.
__global__ void lift_x_kernel(LiftView w, const float* x, float* xt, int64_t batch) {
    const int64_t n = batch * w.cols;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t c = e % w.cols;
        float v = x[e];
        if (w.act_scale) v /= half_bits_to_float(__ldg(w.act_scale + c));
        if (w.signs && !bit_set(w.signs, c)) v = -v;
        xt[e] = v;
    }
}

// p[b][j D + k] = sum_i M[i][k] xt[b][j d + i] / norm, over the columns a short last chunk has.
__global__ void lift_project_kernel(LiftView w, const float* xt, float* p, int64_t batch, float norm) {
    const int64_t chunks = (w.cols + w.d - 1) / w.d, plen = chunks * w.D, n = batch * plen;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t b = e / plen, t = e - b * plen, j = t / w.D;
        const int k = static_cast<int>(t - j * w.D);
        const float* xc = xt + b * w.cols + j * w.d;
        float acc = 0.f;
        const int width = static_cast<int>(min(int64_t(w.d), w.cols - j * w.d));
        for (int i = 0; i < width; ++i) acc = fmaf(half_bits_to_float(__ldg(w.M + i * w.D + k)), xc[i], acc);
        p[e] = acc / norm;
    }
}

int64_t hadamard_block(int64_t cols) { return cols & -cols; }

void dequantize(const LiftView& w, void* out, bool f16) {
    validate(w);
    if (!out) throw std::invalid_argument("lift view: output pointer is null");
    const int64_t n = w.rows * w.cols;
    // fp32 output is its own scratch; fp16 output needs an fp32 one.
    Scratch scratch(f16 ? n * sizeof(float) : 0);
    float* tmp = f16 ? scratch.as<float>() : static_cast<float*>(out);
    lift_decode_kernel<<<grid_for(n), kThreads>>>(w, tmp);
    check_launch("lift_dequantize_cuda");
    if (w.signs) fwht_rows(tmp, w.rows, w.cols, hadamard_block(w.cols));
    const float norm = hadamard_norm(hadamard_block(w.cols));
    if (f16) lift_finish_kernel<true><<<grid_for(n), kThreads>>>(w, tmp, out, norm);
    else lift_finish_kernel<false><<<grid_for(n), kThreads>>>(w, tmp, out, norm);
    check_launch("lift_dequantize_cuda");
}

}  // namespace

void lift_dequantize_f32_cuda(const LiftView& w, float* out) { dequantize(w, out, false); }

void lift_dequantize_f16_cuda(const LiftView& w, uint16_t* out) { dequantize(w, out, true); }

void lift_gemv_cuda(const LiftView& w, const float* x, float* y, int64_t batch) {
    validate(w);
    if (batch < 1 || batch > 8) throw std::invalid_argument("lift view: batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) throw std::invalid_argument("lift view: x or y is null");
    const int64_t plen = lift_chunks(w) * w.D;
    Scratch xt(batch * w.cols * sizeof(float)), p(batch * plen * sizeof(float));
    lift_x_kernel<<<grid_for(batch * w.cols), kThreads>>>(w, x, xt.as<float>(), batch);
    check_launch("lift_gemv_cuda");
    float norm = 1.f;
    if (w.signs) {
        fwht_rows(xt.as<float>(), batch, w.cols, hadamard_block(w.cols));
        norm = hadamard_norm(hadamard_block(w.cols));
    }
    lift_project_kernel<<<grid_for(batch * plen), kThreads>>>(w, xt.as<float>(), p.as<float>(), batch, norm);
    check_launch("lift_gemv_cuda");
    GridView g;
    g.kind = GridKind::Binary;
    g.bits = 1;
    g.rows = w.rows;
    g.cols = g.group = plen;
    g.codes = w.codes;
    g.code_bytes = w.code_bytes;
    g.scales = w.scales;
    grid_gemv_cuda(g, p.as<float>(), y, batch);
}

}  // namespace quench::kernels
