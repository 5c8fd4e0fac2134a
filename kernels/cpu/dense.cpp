#include "quench_kernels/dense.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace quench::kernels {
namespace {

// Splits [0, n) into contiguous chunks, one per thread; the calling thread takes the first chunk.
template <typename F>
void parallel_for(int64_t n, int threads, F&& body) {
    int t = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    t = static_cast<int>(std::min<int64_t>(t, std::max<int64_t>(n, 1)));
    const int64_t chunk = (n + t - 1) / t;
    std::vector<std::thread> pool;
    for (int i = 1; i < t; ++i) {
        const int64_t b = i * chunk, e = std::min(n, b + chunk);
        if (b < e) pool.emplace_back([&, b, e] { body(b, e); });
    }
    body(0, std::min(n, chunk));
    for (auto& th : pool) th.join();
}

}  // namespace

void gemv_f32(const float* W, const float* x, float* y, int64_t rows, int64_t cols, int64_t batch, int threads) {
    parallel_for(rows, threads, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* w = W + r * cols;
            for (int64_t b = 0; b < batch; ++b) {
                const float* xb = x + b * cols;
                float acc = 0.f;
                for (int64_t c = 0; c < cols; ++c) acc += w[c] * xb[c];
                y[b * rows + r] = acc;
            }
        }
    });
}

void triad_f32(float* a, const float* b, const float* c, float s, std::size_t n, int threads) {
    parallel_for(static_cast<int64_t>(n), threads, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) a[i] = b[i] + s * c[i];
    });
}

#ifndef QUENCH_HAVE_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace quench::kernels
