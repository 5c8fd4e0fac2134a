// Dense baselines: the threaded GEMV equals a straightforward double-precision product; the CUDA GEMV
// matches the CPU one (skipped without a GPU).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "quench_kernels/dense.h"

#ifdef QUENCH_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace {

struct Problem {
    int64_t rows, cols, batch;
    std::vector<float> W, x;
    std::vector<double> ref;
};

Problem make_problem(int64_t rows, int64_t cols, int64_t batch) {
    Problem p{rows, cols, batch, std::vector<float>(rows * cols), std::vector<float>(batch * cols), {}};
    std::mt19937 rng(7);
    std::normal_distribution<float> n;
    for (auto& v : p.W) v = n(rng);
    for (auto& v : p.x) v = n(rng);
    p.ref.assign(batch * rows, 0.0);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) p.ref[b * rows + r] += double(p.W[r * cols + c]) * p.x[b * cols + c];
    return p;
}

}  // namespace

TEST(DenseKernels, GemvMatchesDoublePrecisionReferenceOnOddShapes) {
    for (auto [rows, cols, batch] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {37, 129, 3}, {256, 1000, 8}}) {
        Problem p = make_problem(rows, cols, batch);
        for (int threads : {1, 2, 5}) {
            std::vector<float> y(batch * rows, -1.f);
            quench::kernels::gemv_f32(p.W.data(), p.x.data(), y.data(), rows, cols, batch, threads);
            for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], p.ref[i], 1e-4 * std::sqrt(double(cols)) + 1e-5);
        }
    }
}

TEST(DenseKernels, TriadComputesAPlusScaledC) {
    std::vector<float> a(1001), b(1001), c(1001);
    for (std::size_t i = 0; i < b.size(); ++i) {
        b[i] = float(i);
        c[i] = float(2 * i + 1);
    }
    quench::kernels::triad_f32(a.data(), b.data(), c.data(), 0.5f, a.size(), 2);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_FLOAT_EQ(a[i], float(i) + 0.5f * float(2 * i + 1));
}

TEST(DenseKernels, CudaGemvMatchesCpu) {
    if (quench::kernels::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    Problem p = make_problem(300, 777, 4);
    float *dW, *dx, *dy;
    ASSERT_EQ(cudaMalloc(&dW, p.W.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dx, p.x.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dy, p.ref.size() * 4), cudaSuccess);
    cudaMemcpy(dW, p.W.data(), p.W.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dx, p.x.data(), p.x.size() * 4, cudaMemcpyHostToDevice);
    quench::kernels::gemv_f32_cuda(dW, dx, dy, p.rows, p.cols, p.batch);
    std::vector<float> y(p.ref.size());
    cudaMemcpy(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost);
    cudaFree(dW);
    cudaFree(dx);
    cudaFree(dy);
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], p.ref[i], 1e-3);
#endif
}
