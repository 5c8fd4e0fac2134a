// Dense fp32 GEMV on the GPU: one warp per output row, the reference the packed CUDA kernels are timed
// against alongside cuBLAS.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "quench_kernels/dense.h"

namespace quench::kernels {
namespace {

__global__ void gemv_f32_kernel(const float* W, const float* x, float* y, int64_t rows, int64_t cols, int64_t batch) {
    const int64_t row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* w = W + row * cols;
    for (int64_t b = 0; b < batch; ++b) {
        const float* xb = x + b * cols;
        float acc = 0.f;
        for (int64_t c = lane; c < cols; c += 32) acc += w[c] * xb[c];
        for (int off = 16; off > 0; off /= 2) acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) y[b * rows + row] = acc;
    }
}

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no device" error
        return 0;
    }
    return n;
}

void gemv_f32_cuda(const float* W, const float* x, float* y, int64_t rows, int64_t cols, int64_t batch) {
    constexpr int kWarpsPerBlock = 8;
    const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
    gemv_f32_kernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32>>>(W, x, y, rows, cols, batch);
    check(cudaGetLastError(), "gemv_f32_cuda launch");
    check(cudaDeviceSynchronize(), "gemv_f32_cuda");
}

}  // namespace quench::kernels
