// QAM-W (joint codebook) packed kernels against core's codec: dequantization equals Codec::dequantize bit
// for bit (lookup, butterflies and scalings are single IEEE operations on any CPU; fp16 is that value
// rounded); the GEMV (transforms moved onto x, one codebook lookup per pair) matches the core-dequantized
// weight times x in double within 1e-5 of sum_c |W[r][c] x[c]|.
// Signs, act_scale, block sizes down to 2, odd pair counts, real model layers, both CPU paths, bad views
// and CUDA against the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quant/hadamard.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_qamw.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

constexpr GemvCheck kQamwGemv{1e-5, 30, 5};
constexpr uint64_t kQuantizeSeedFactor = 7919;  // quantize seeds apart from the calibration seeds

const std::vector<PackedCase>& qamw_cases() {
    static const std::vector<PackedCase> c = make_cases(
        {{"qamw:k=7", 13, 256},          {"qamw:k=8,signs", 9, 128},       {"qamw:k=6,block=16,act_scale", 11, 48},
         {"qamw:k=5,block=2", 7, 38},    {"qamw:k=8,block=4,signs,act_scale", 5, 12},
         {"qamw:k=4,block=64", 21, 320}},
        kQuantizeSeedFactor);
    return c;
}

std::vector<qk::CpuOptions> qamw_paths() { return cpu_paths(2); }

}  // namespace

TEST(PackedQamw, SignsAreCoreRandomSigns) {
    for (uint64_t seed : {0ull, 1ull, 123456789ull}) {
        const auto s = random_signs(1000, seed);
        for (int64_t c = 0; c < 1000; ++c) ASSERT_EQ(qk::qamw_sign(seed, c), s[c].item<float>()) << seed << ", " << c;
    }
}

TEST(PackedQamw, DequantizeEqualsCoreBitForBit) { expect_dequant_matches(qamw_cases(), qamw_paths()); }

TEST(PackedQamw, GemvMatchesDenseReference) { expect_gemv_close(qamw_cases(), qamw_paths(), {1, 2, 5, 8}, kQamwGemv); }

TEST(PackedQamw, AgreesWithCoreOnTheRealModelLayers) {
    expect_agrees_on_real_model({"qamw:k=8,block=128"}, qamw_paths(), kQamwGemv, kQuantizeSeedFactor);
}

TEST(PackedQamw, RejectsInconsistentViews) {
    const qk::QamwView good = qamw_view(qamw_cases().front().q);  // k=7, block 128, [13, 256]
    std::vector<float> out(good.rows * good.cols);
    expect_rejected(good, [&](const qk::QamwView& v) { qk::qamw_dequantize_f32(v, out.data()); },
                    {{[](qk::QamwView& v) { v.block = 96; }, "block 96 is not a power of two dividing cols 256"},
                     {[](qk::QamwView& v) { v.k = 17; }, "k=17 is outside 2..16"},
                     {[](qk::QamwView& v) { v.code_bytes -= 1; }, "codes hold"},
                     {[](qk::QamwView& v) { v.codebook = nullptr; }, "codebook pointer is null"}});
}

TEST(PackedQamw, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    for (const PackedCase& c : qamw_cases()) expect_cuda_matches_cpu(c, {1, 8}, kQamwGemv);
#endif
}
