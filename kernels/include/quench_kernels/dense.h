#pragma once
// Dense fp32 baselines over raw pointers: the reference every packed kernel is measured against, and a
// STREAM-style triad that measures this machine's memory bandwidth in the same binary.
#include <cstddef>
#include <cstdint>

namespace quench::kernels {

// y[b][r] = sum_c W[r][c] * x[b][c] for b < batch; W row-major [rows, cols], x [batch, cols], y [batch, rows].
// Threaded over output rows with up to `threads` threads (0 = hardware concurrency).
void gemv_f32(const float* W, const float* x, float* y, int64_t rows, int64_t cols, int64_t batch, int threads = 0);

// a[i] = b[i] + s * c[i]; returns nothing, callers time it. Threaded like gemv_f32.
void triad_f32(float* a, const float* b, const float* c, float s, std::size_t n, int threads = 0);

// Number of CUDA devices visible (0 when built without CUDA or when no GPU is present).
int cuda_device_count();

#ifdef QUENCH_HAVE_CUDA
// Same contract as gemv_f32 with device pointers; synchronises before returning.
void gemv_f32_cuda(const float* W, const float* x, float* y, int64_t rows, int64_t cols, int64_t batch);
#endif

}  // namespace quench::kernels
