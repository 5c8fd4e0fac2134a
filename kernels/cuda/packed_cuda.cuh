#pragma once
// Device helpers the packed CUDA kernels share: error checks, warp sums, fp16 scale reads and byte-stream
// reads that never touch memory past the stream's end.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace quench::kernels::cuda_detail {

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Launches are asynchronous on the default stream; a bad launch configuration is reported here, faults
// inside a kernel at the caller's next synchronising call.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

constexpr int kWarp = 32;

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float half_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }

// Eight bytes of the stream from `byte`, little-endian, zero past its end: three aligned 32-bit words and
// a funnel shift where they lie inside the stream (and p is 4-byte aligned), byte reads near its end.
__device__ __forceinline__ uint64_t load_u64(const uint8_t* p, int64_t nbytes, int64_t byte) {
    const int64_t w0 = byte >> 2;
    if ((reinterpret_cast<uintptr_t>(p) & 3) == 0 && (w0 + 3) * 4 <= nbytes) {
        const auto* q = reinterpret_cast<const uint32_t*>(p) + w0;
        const uint64_t lo = __ldg(q) | uint64_t(__ldg(q + 1)) << 32, hi = __ldg(q + 2);
        const int sh = static_cast<int>(byte & 3) * 8;
        return sh ? (lo >> sh) | (hi << (64 - sh)) : lo;
    }
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k)
        if (byte + k < nbytes) v |= static_cast<uint64_t>(__ldg(p + byte + k)) << (8 * k);
    return v;
}

__device__ __forceinline__ uint32_t code_at(const uint8_t* p, int64_t nbytes, int bits, int64_t i) {
    const int64_t bit = i * bits;
    return static_cast<uint32_t>(load_u64(p, nbytes, bit >> 3) >> (bit & 7)) & ((1u << bits) - 1u);
}

__device__ __forceinline__ uint32_t trit_at(const uint8_t* p, int64_t i) {
    const uint32_t pow3[5] = {1, 3, 9, 27, 81};
    return (__ldg(p + i / 5) / pow3[i % 5]) % 3u;
}

// Byte -> its five trits as 2-bit fields (first trit lowest), for a shared-memory table.
__device__ __forceinline__ uint16_t trit_fields(uint32_t byte) {
    uint16_t f = 0;
    for (int k = 0; k < 5; ++k, byte /= 3) f |= static_cast<uint16_t>((byte % 3) << (2 * k));
    return f;
}

// Trits i .. i + 7 as 2-bit fields: at most three bytes, looked up in `table` (256 trit_fields entries).
__device__ __forceinline__ uint32_t trits8(const uint8_t* p, int64_t nbytes, const uint16_t* table, int64_t i) {
    const int64_t byte = i / 5;
    const int phase = static_cast<int>(i - byte * 5);
    uint32_t f = 0;
    for (int j = 0; j < 3; ++j)
        if (byte + j < nbytes) f |= uint32_t(table[__ldg(p + byte + j)]) << (10 * j);
    return f >> (2 * phase);
}

inline unsigned blocks_for(int64_t n, int per_block) { return static_cast<unsigned>((n + per_block - 1) / per_block); }

// In-place unnormalised Walsh-Hadamard butterflies over each block of each row of data [nrows, len]:
// the same sums and differences, in the same order, as core's hadamard_blocks (packed_hadamard.cu).
void fwht_rows(float* data, int64_t nrows, int64_t len, int64_t block);

// fp32(sqrt(block)), hadamard_blocks' divisor.
float hadamard_norm(int64_t block);

// Stream-ordered scratch memory on the default stream, freed (in stream order) when it goes out of scope.
class Scratch {
public:
    explicit Scratch(std::size_t bytes) { check(cudaMallocAsync(&p_, bytes > 0 ? bytes : 16, 0), "cudaMallocAsync"); }
    ~Scratch() { cudaFreeAsync(p_, 0); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    template <typename T>
    T* as() const { return static_cast<T*>(p_); }

private:
    void* p_ = nullptr;
};

}  // namespace quench::kernels::cuda_detail
