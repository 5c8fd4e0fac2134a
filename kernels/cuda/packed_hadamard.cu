// Walsh-Hadamard butterflies on the GPU for the rotation-based codecs (LiftQuant, QAM-W): each row block in
// shared memory when it fits, otherwise one launch per butterfly stage in global memory.
#include <cmath>

#include "packed_cuda.cuh"

namespace quench::kernels::cuda_detail {
namespace {

constexpr int64_t kSharedBlock = 4096;  // 16 KiB of fp32

// One CUDA block per (row, Hadamard block).
__global__ void fwht_shared_kernel(float* data, int64_t len, int64_t block) {
    extern __shared__ float s[];
    const int64_t blocks_per_row = len / block;
    float* v = data + (blockIdx.x / blocks_per_row) * len + (blockIdx.x % blocks_per_row) * block;
    for (int64_t i = threadIdx.x; i < block; i += blockDim.x) s[i] = v[i];
    __syncthreads();
    for (int64_t h = 1; h < block; h *= 2) {
        for (int64_t t = threadIdx.x; t < block / 2; t += blockDim.x) {
            const int64_t i = (t / h) * 2 * h + t % h;
            const float a = s[i], b = s[i + h];
            s[i] = __fadd_rn(a, b);
            s[i + h] = __fsub_rn(a, b);
        }
        __syncthreads();
    }
    for (int64_t i = threadIdx.x; i < block; i += blockDim.x) v[i] = s[i];
}

// One butterfly stage h over every pair of the matrix.
__global__ void fwht_stage_kernel(float* data, int64_t pairs, int64_t h) {
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < pairs; t += int64_t(gridDim.x) * blockDim.x) {
        const int64_t i = (t / h) * 2 * h + t % h;
        const float a = data[i], b = data[i + h];
        data[i] = __fadd_rn(a, b);
        data[i + h] = __fsub_rn(a, b);
    }
}

}  // namespace

void fwht_rows(float* data, int64_t nrows, int64_t len, int64_t block) {
    if (block <= 1) return;
    if (block <= kSharedBlock) {
        const int threads = static_cast<int>(std::min<int64_t>(block / 2, 512));
        fwht_shared_kernel<<<static_cast<unsigned>(nrows * (len / block)), threads, block * sizeof(float)>>>(data, len, block);
        check_launch("fwht_rows");
        return;
    }
    // Rows are whole blocks, so pairs never cross rows: stage h pairs i and i + h within 2h-aligned spans.
    const int64_t pairs = nrows * len / 2;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(pairs, 256), 1 << 16));
    for (int64_t h = 1; h < block; h *= 2) {
        fwht_stage_kernel<<<blocks, 256>>>(data, pairs, h);
        check_launch("fwht_rows");
    }
}

float hadamard_norm(int64_t block) { return static_cast<float>(std::sqrt(static_cast<double>(block))); }

}  // namespace quench::kernels::cuda_detail
