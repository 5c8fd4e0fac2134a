// LC-QAT lattice on the GPU: dequantization replays core's GEMMs as fused multiply-add chains in k order
// (one thread per output); the GEMV projects x, runs the unsigned 2-bit grid GEMV and transforms the outputs,
// as the CPU path does.
#include "packed_cuda.cuh"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_lattice.h"

namespace quench::kernels {
namespace {

using namespace cuda_detail;

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 16)); }

#define QK_FOR_EACH(e, n) \
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (n); e += int64_t(gridDim.x) * blockDim.x)

// Wt[o][4j + m] = (sum_t q_t A[m][t], fused in t order) + b[m].
__global__ void lattice_decode_kernel(LatticeView w, float* t) {
    QK_FOR_EACH(e, w.rows * w.cols) {
        const uint32_t idx = __ldg(w.codes + e / 4);
        const int m = static_cast<int>(e % 4);
        const float q[4] = {float(idx >> 6), float((idx >> 4) & 3), float((idx >> 2) & 3), float(idx & 3)};
        float acc = 0.f;
        for (int k = 0; k < 4; ++k) acc = __fmaf_rn(q[k], __ldg(w.A + m * 4 + k), acc);
        t[e] = __fadd_rn(acc, __ldg(w.b + m));
    }
}

// Entry (k, c) of the normalised Sylvester Hadamard matrix: +-h.
__device__ __forceinline__ float hadamard_entry(int64_t k, int64_t c, float h) { return (__popcll(k & c) & 1) ? -h : h; }

// Over columns: out[r][c] = sum_k in[r][b0 + k] H[k][c - b0], one fused chain per output, k ascending.
__global__ void hadamard_cols_kernel(const float* in, float* out, int64_t rows, int64_t cols, int64_t block, float h) {
    QK_FOR_EACH(e, rows * cols) {
        const int64_t r = e / cols, c = e % cols, b0 = c - c % block;
        const float* x = in + r * cols + b0;
        float acc = 0.f;
        for (int64_t k = 0; k < block; ++k) acc = __fmaf_rn(x[k], hadamard_entry(k, c - b0, h), acc);
        out[e] = acc;
    }
}

// Over rows: out[o][c] = sum_k in[o0 + k][c] H[k][o - o0].
__global__ void hadamard_rows_kernel(const float* in, float* out, int64_t rows, int64_t cols, int64_t block, float h) {
    QK_FOR_EACH(e, rows * cols) {
        const int64_t o = e / cols, c = e % cols, o0 = o - o % block;
        float acc = 0.f;
        for (int64_t k = 0; k < block; ++k) acc = __fmaf_rn(in[(o0 + k) * cols + c], hadamard_entry(k, o - o0, h), acc);
        out[e] = acc;
    }
}

template <bool F16>
__global__ void lattice_finish_kernel(LatticeView w, const float* in, void* out) {
    QK_FOR_EACH(e, w.rows * w.cols) {
        const float v = __fmul_rn(__fmul_rn(half_bits_to_float(__ldg(w.sv + e / w.cols)), in[e]),
                                  half_bits_to_float(__ldg(w.su + e % w.cols)));
        if (F16) static_cast<__half*>(out)[e] = __float2half_rn(v);
        else static_cast<float*>(out)[e] = v;
    }
}

__global__ void lattice_x_kernel(LatticeView w, const float* x, float* xt, int64_t batch) {
    QK_FOR_EACH(e, batch * w.cols) xt[e] = x[e] * half_bits_to_float(__ldg(w.su + e % w.cols));
}

// p[b][4j + 3 - i] = sum_m A[m][i] x'[b][4j + m] / norm (stream order of the 2-bit codes).
__global__ void lattice_project_kernel(LatticeView w, const float* xt, float* p, int64_t batch, float norm) {
    QK_FOR_EACH(e, batch * w.cols) {
        const int64_t chunk = e / 4;
        const int i = 3 - static_cast<int>(e % 4);
        float acc = 0.f;
        for (int m = 0; m < 4; ++m) acc = fmaf(__ldg(w.A + m * 4 + i), xt[chunk * 4 + m], acc);
        p[e] = acc / norm;
    }
}

// consts[b] = sum_j b . x'_j / norm: one block per vector.
__global__ void lattice_const_kernel(LatticeView w, const float* xt, float* consts, float norm) {
    __shared__ float part[kThreads];
    const float* xb = xt + blockIdx.x * w.cols;
    float acc = 0.f;
    for (int64_t c = threadIdx.x; c < w.cols; c += blockDim.x) acc = fmaf(__ldg(w.b + c % 4), xb[c], acc);
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) consts[blockIdx.x] = part[0] / norm;
}

__global__ void fill_kernel(uint16_t* p, int64_t n, uint16_t v) { QK_FOR_EACH(e, n) p[e] = v; }

__global__ void add_const_kernel(float* y, const float* consts, int64_t rows, int64_t batch) {
    QK_FOR_EACH(e, batch * rows) y[e] += consts[e / rows];
}

__global__ void lattice_out_kernel(LatticeView w, float* y, int64_t batch, float norm) {
    QK_FOR_EACH(e, batch * w.rows) y[e] = y[e] / norm * half_bits_to_float(__ldg(w.sv + e % w.rows));
}

void dequantize(const LatticeView& w, void* out, bool f16) {
    validate(w);
    if (!out) throw std::invalid_argument("lattice view: output pointer is null");
    const int64_t n = w.rows * w.cols;
    Scratch t(n * sizeof(float)), u(n * sizeof(float));
    float *cur = t.as<float>(), *other = u.as<float>();
    lattice_decode_kernel<<<grid_for(n), kThreads>>>(w, cur);
    if (w.had_in > 1) {
        hadamard_cols_kernel<<<grid_for(n), kThreads>>>(cur, other, w.rows, w.cols, w.had_in, 1.0f / hadamard_norm(w.had_in));
        std::swap(cur, other);
    }
    if (w.had_out > 1) {
        hadamard_rows_kernel<<<grid_for(n), kThreads>>>(cur, other, w.rows, w.cols, w.had_out, 1.0f / hadamard_norm(w.had_out));
        std::swap(cur, other);
    }
    if (f16) lattice_finish_kernel<true><<<grid_for(n), kThreads>>>(w, cur, out);
    else lattice_finish_kernel<false><<<grid_for(n), kThreads>>>(w, cur, out);
    check_launch("lattice_dequantize_cuda");
}

}  // namespace

void lattice_dequantize_f32_cuda(const LatticeView& w, float* out) { dequantize(w, out, false); }

void lattice_dequantize_f16_cuda(const LatticeView& w, uint16_t* out) { dequantize(w, out, true); }

void lattice_gemv_cuda(const LatticeView& w, const float* x, float* y, int64_t batch) {
    validate(w);
    if (batch < 1 || batch > 8) throw std::invalid_argument("lattice view: batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) throw std::invalid_argument("lattice view: x or y is null");
    const int64_t rows = w.rows, cols = w.cols;
    Scratch xt(batch * cols * sizeof(float)), p(batch * cols * sizeof(float)), consts(batch * sizeof(float)),
        ones(rows * sizeof(uint16_t));
    lattice_x_kernel<<<grid_for(batch * cols), kThreads>>>(w, x, xt.as<float>(), batch);
    fwht_rows(xt.as<float>(), batch, cols, w.had_in);
    const float norm_in = hadamard_norm(w.had_in);
    lattice_project_kernel<<<grid_for(batch * cols), kThreads>>>(w, xt.as<float>(), p.as<float>(), batch, norm_in);
    lattice_const_kernel<<<static_cast<unsigned>(batch), kThreads>>>(w, xt.as<float>(), consts.as<float>(), norm_in);
    fill_kernel<<<grid_for(rows), kThreads>>>(ones.as<uint16_t>(), rows, 0x3c00);  // fp16 1.0
    check_launch("lattice_gemv_cuda");
    GridView g;
    g.kind = GridKind::Unsigned;
    g.bits = 2;
    g.rows = rows;
    g.cols = g.group = cols;
    g.codes = w.codes;
    g.code_bytes = rows * cols / 4;
    g.scales = ones.as<uint16_t>();
    grid_gemv_cuda(g, p.as<float>(), y, batch);
    add_const_kernel<<<grid_for(batch * rows), kThreads>>>(y, consts.as<float>(), rows, batch);
    fwht_rows(y, batch, rows, w.had_out);
    lattice_out_kernel<<<grid_for(batch * rows), kThreads>>>(w, y, batch, hadamard_norm(w.had_out));
    check_launch("lattice_gemv_cuda");
}

}  // namespace quench::kernels
