// LiftQuant packed kernels against core's codec: dequantization equals the scalar kernel bit for bit on every
// path, and Codec::dequantize (whose D-term sums run through BLAS in a CPU-dependent order) within the bound
// of kernels/dequant_tolerance.h; fp16 is that fp32 result rounded. The GEMV (transforms moved onto x, M projected once per chunk, sign sums)
// matches the core-dequantized weight times x in double within 1e-5 of sum_c |W[r][c] x[c]| (the projection
// and Hadamard reorder fp32 sums of 2 * cols terms). Hadamard on/off, awq, odd shapes, real model layers,
// both CPU paths, bad views and CUDA against the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_liftquant.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

constexpr GemvCheck kLiftGemv{1e-5, 50, 3};

// Hadamard blocks of 8, 32, 2, 128 and 4096 (cols & -cols), no Hadamard, awq, d not a power of two.
const std::vector<PackedCase>& lift_cases() {
    static const std::vector<PackedCase> c = make_cases({
        {"liftquant:D=16,d=8", 13, 200},          {"liftquant:D=16,d=8", 7, 96},
        {"liftquant:D=16,d=10", 5, 130},          {"liftquant:D=20,d=8,awq", 11, 128},
        {"liftquant:D=16,d=10,had=0", 9, 250},    {"liftquant:D=16,d=8,had=0,awq", 3, 64},
        {"liftquant:D=16,d=8", 4, 4096},
        // d not dividing the width: a short, zero-padded last chunk (128 = 12 x 10 + 8, 100 = 12 x 8 + 4,
        // 172 = 17 x 10 + 2)
        {"liftquant:D=24,d=10", 6, 128},          {"liftquant:D=16,d=8,awq", 5, 100},
        {"liftquant:D=16,d=10,had=0", 7, 172}});
    return c;
}

std::vector<qk::CpuOptions> lift_paths() { return cpu_paths(2); }

}  // namespace

TEST(PackedLiftQuant, DequantizeMatchesCoreWithinTheSummationBound) {
    expect_dequant_matches(lift_cases(), lift_paths());
}

TEST(PackedLiftQuant, GemvMatchesDenseReference) {
    expect_gemv_close(lift_cases(), lift_paths(), {1, 2, 5, 8}, kLiftGemv);
}

TEST(PackedLiftQuant, GemvOfOneChunkIsTheHandComputedSignSum) {
    // One row, one chunk, no transforms: y = scale * sum_k y_k (M^T x)_k, worked out by hand.
    const uint16_t M[2 * 3] = {qk::float_to_half(1.f), qk::float_to_half(0.5f), qk::float_to_half(-2.f),
                               qk::float_to_half(0.25f), qk::float_to_half(4.f), qk::float_to_half(1.f)};
    const uint8_t codes[1] = {0b101};  // y = (+1, -1, +1)
    const uint16_t scale[1] = {qk::float_to_half(2.f)};
    qk::LiftView v;
    v.rows = 1, v.cols = 2, v.D = 3, v.d = 2, v.codes = codes, v.code_bytes = 1, v.scales = scale, v.M = M;
    const float x[2] = {3.f, -1.f};
    // W = scale * (M y)^T = 2 * (1 - 0.5 - 2, 0.25 - 4 + 1) = (-3, -5.5); W x = -9 + 5.5.
    float w[2], y[1];
    for (const auto& o : lift_paths()) {
        qk::lift_dequantize_f32(v, w, o);
        EXPECT_EQ(w[0], -3.f);
        EXPECT_EQ(w[1], -5.5f);
        qk::lift_gemv(v, x, y, 1, o);
        EXPECT_EQ(y[0], -3.5f);
    }
}

TEST(PackedLiftQuant, AgreesWithCoreOnTheRealModelLayers) {
    expect_agrees_on_real_model({"liftquant:D=16,d=8"}, lift_paths(), kLiftGemv);
}

TEST(PackedLiftQuant, RejectsInconsistentViews) {
    const qk::LiftView good = lift_view(lift_cases().front().q);
    std::vector<float> out(good.rows * good.cols), x(good.cols), y(good.rows);
    expect_rejected(good, [&](const qk::LiftView& v) { qk::lift_dequantize_f32(v, out.data()); },
                    {{[](qk::LiftView& v) { v.d = 7; }, "codes hold 650 bytes, 754 needed"},  // 29 chunks of 7, not 25 of 8
                     {[](qk::LiftView& v) { v.D = 8; }, "outside 1 <= d < D <= 32"},
                     {[](qk::LiftView& v) { v.code_bytes /= 2; }, "codes hold"},
                     {[](qk::LiftView& v) { v.M = nullptr; }, "M pointer is null"}});
    EXPECT_THROW(qk::lift_gemv(good, x.data(), y.data(), 0), std::invalid_argument);
}

TEST(PackedLiftQuant, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    for (const PackedCase& c : lift_cases()) expect_cuda_matches_cpu(c, {1, 8}, kLiftGemv);
#endif
}
