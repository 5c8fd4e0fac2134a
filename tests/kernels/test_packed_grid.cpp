// Scalar-grid packed kernels against core's codecs: dequantization equals Codec::dequantize bit for bit
// (scale * (code - zero) is one rounding on any CPU; fp16 is that value rounded); the GEMV matches the core-dequantized weight times x in double
// within 2e-6 of sum_c |W[r][c] x[c]| (fp32 group sums: a few ulps of accumulated rounding). Both CPU paths,
// odd shapes with tails, the real model's layers, bad views, and the CUDA kernels against the CPU ones.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_grid.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

constexpr GemvCheck kGridGemv{2e-6, 99, 7};

// Odd shapes exercise the scalar tails after the 8-wide blocks, rows starting mid-byte (3-bit, trits) and
// group boundaries inside a byte; the last rows have a short last group (SmolLM2's 576 with g=128, widths
// 100 and 172 whose tails are not whole vectors, GPTQ's dynamic groups over one).
const std::vector<PackedCase>& grid_cases() {
    static const std::vector<PackedCase> c = make_cases({
        {"rtn:b=2,g=32", 19, 96},        {"rtn:b=3,g=64", 13, 192},       {"rtn:b=4,g=128", 9, 256},
        {"rtn:b=8,g=0", 7, 1001},        {"rtn:b=5,g=0", 11, 77},         {"rtn:b=4,g=128,sym", 17, 384},
        {"rtn:b=3,g=0,sym", 21, 131},    {"rtn:b=2,g=0,sym", 5, 13},      {"rtn:b=7,g=32,sym", 3, 64},
        {"paretoq:b=1", 23, 1003},       {"paretoq:b=1.58", 29, 517},     {"paretoq:b=2", 31, 250},
        {"paretoq:b=3", 6, 99},          {"paretoq:b=4", 10, 4100},       {"gptq:b=2,g=32,grid=paretoq", 12, 160},
        {"gptq:b=1.58,g=64,grid=paretoq", 9, 128}, {"gptq:b=3,g=64", 15, 128},
        {"rtn:b=4,g=128", 9, 576},       {"rtn:b=2,g=32", 19, 100},       {"rtn:b=3,g=64,sym", 13, 172},
        {"gptq:b=4,g=128", 7, 200},      {"gptq:b=3,g=64,act_order", 5, 150}});
    return c;
}

std::vector<qk::CpuOptions> grid_paths() { return cpu_paths(3); }

}  // namespace

TEST(PackedGrid, HalfConversionsMatchTorchOnEveryPattern) {
    auto all = torch::arange(65536, torch::kInt).to(torch::kShort).view(torch::kHalf);
    const auto f = all.to(torch::kFloat);
    const int16_t* h = all.view(torch::kShort).data_ptr<int16_t>();
    const float* want = f.data_ptr<float>();
    for (int i = 0; i < 65536; ++i) {
        const float got = qk::half_to_float(static_cast<uint16_t>(h[i]));
        if (std::isnan(want[i])) EXPECT_TRUE(std::isnan(got)) << i;
        else ASSERT_EQ(std::memcmp(&got, &want[i], 4), 0) << "half pattern " << i;
    }
    // fp32 -> fp16 on values around every rounding regime: subnormal halves, ties, overflow to infinity.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    auto x = torch::cat({torch::randn({20000}, gen) * torch::exp(torch::randn({20000}, gen) * 6),
                         f.masked_select(torch::isfinite(f)) * (1 + std::ldexp(1.0, -11)),  // exact ties
                         torch::tensor({65504.f, 65519.f, 65520.f, 1e9f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 0.f, -0.f})});
    const auto want16 = x.to(torch::kHalf).view(torch::kShort);
    const float* xp = x.data_ptr<float>();
    const int16_t* w16 = want16.data_ptr<int16_t>();
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(qk::float_to_half(xp[i]), static_cast<uint16_t>(w16[i])) << xp[i];
}

TEST(PackedGrid, DequantizeEqualsCoreBitForBitOnBothPaths) { expect_dequant_matches(grid_cases(), grid_paths()); }

TEST(PackedGrid, GemvMatchesDenseReferenceOnOddShapes) {
    expect_gemv_close(grid_cases(), grid_paths(), {1, 2, 3, 8}, kGridGemv);
}

TEST(PackedGrid, AgreesWithCoreOnTheRealModelLayers) {
    expect_agrees_on_real_model({"rtn:b=4,g=128", "rtn:b=2,g=64,sym", "rtn:b=3,g=32", "paretoq:b=1.58", "paretoq:b=2"},
                                grid_paths(), kGridGemv);
}

TEST(PackedGrid, GemvOfGridValuedWeightsIsExactOnSmallIntegers) {
    // Rows k / 16 with max|k| = 7: the symmetric 4-bit fit recovers scale 1/16 and every k, and with integer
    // inputs each partial sum is exact in fp32, so y is the hand-computed value exactly.
    const auto k = torch::tensor({7, -1, 0, 3, -7, 2, 5, 1, 4, 7, -3, -6}, torch::kFloat).view({3, 4});
    const PackedCase c = make_case("rtn:b=4,g=0,sym", k / 16, 0, 0);
    ASSERT_TRUE(torch::equal(c.ref, k / 16));
    const float x[4] = {1, -2, 3, 5};
    for (const auto& o : grid_paths()) {
        float y[3];
        qk::grid_gemv(grid_view(c.q), x, y, 1, o);
        EXPECT_EQ(y[0], 24 / 16.f) << path_name(o);   // 7 + 2 + 0 + 15
        EXPECT_EQ(y[1], 9 / 16.f) << path_name(o);    // -7 - 4 + 15 + 5
        EXPECT_EQ(y[2], -49 / 16.f) << path_name(o);  // 4 - 14 - 9 - 30
    }
}

TEST(PackedGrid, RejectsInconsistentViews) {
    const PackedCase& c = grid_cases().front();  // rtn:b=2,g=32, [19, 96]
    const qk::GridView good = grid_view(c.q);
    std::vector<float> out(c.q.numel()), x(96), y(19);
    expect_rejected(good, [&](const qk::GridView& v) { qk::grid_gemv(v, x.data(), y.data(), 1); },
                    {{[](qk::GridView& v) { v.group = 97; }, "group 97 is outside 1..cols 96"},
                     {[](qk::GridView& v) { v.group = 0; }, "group 0 is outside"},
                     {[](qk::GridView& v) { v.code_bytes -= 1; }, "codes hold"},
                     {[](qk::GridView& v) { v.zeros = nullptr; }, "zeros hold"},
                     {[](qk::GridView& v) { v.kind = qk::GridKind::Seq; }, "zeros given"},
                     {[](qk::GridView& v) { v.kind = qk::GridKind::Binary; }, "bits=2 does not fit"}});
    EXPECT_THROW(qk::grid_gemv(good, x.data(), y.data(), 9), std::invalid_argument);
    EXPECT_NO_THROW(qk::grid_dequantize_f32(good, out.data()));
}

TEST(PackedGrid, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    for (const PackedCase& c : grid_cases()) expect_cuda_matches_cpu(c, {1, 3, 8}, kGridGemv);
#endif
}
