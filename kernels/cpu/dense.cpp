#include "quench_kernels/dense.h"

#include <immintrin.h>

#include "quench_kernels/packed_common.h"
#include "quench_kernels/packed_detail.h"

namespace quench::kernels {
namespace {

using detail::parallel_rows;

// The baseline must be as fast as the memory allows, or every packed speed-up measured against it would
// be flattering: a plain `acc += w * x` loop is one dependent scalar chain (the compiler may not reorder
// float sums), several times slower than the bandwidth. Eight independent partial sums break the chain.
float dot_scalar(const float* w, const float* x, int64_t n) {
    float acc[8] = {};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; ++k) acc[k] += w[c + k] * x[c + k];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; c < n; ++c) sum += w[c] * x[c];
    return sum;
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* w, const float* x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 32 <= n; c += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(x + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 8), _mm256_loadu_ps(x + c + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 16), _mm256_loadu_ps(x + c + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 24), _mm256_loadu_ps(x + c + 24), a3);
    }
    for (; c + 8 <= n; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(x + c), a0);
    const __m256 v = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    float sum = _mm_cvtss_f32(h);
    for (; c < n; ++c) sum += w[c] * x[c];
    return sum;
}

}  // namespace

void gemv_f32(const float* W, const float* x, float* y, int64_t rows, int64_t cols, int64_t batch, int threads) {
    const auto dot = cpu_has_avx2() ? dot_avx2 : dot_scalar;
    parallel_rows(rows, threads, [&](int64_t r0, int64_t r1) {
        // Each row is read from memory once; the batch's other vectors find it in cache.
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t b = 0; b < batch; ++b) y[b * rows + r] = dot(W + r * cols, x + b * cols, cols);
    });
}

void triad_f32(float* a, const float* b, const float* c, float s, std::size_t n, int threads) {
    parallel_rows(static_cast<int64_t>(n), threads, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) a[i] = b[i] + s * c[i];
    });
}

#ifndef QUENCH_HAVE_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace quench::kernels
