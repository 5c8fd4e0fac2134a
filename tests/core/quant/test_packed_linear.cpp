// PackedLinear: x W^T through the packed kernels equals x W'^T with W' core's dequantized weight, up to
// fp32 summation order, for a codec of every kernel family, for any leading shape and a row count that is
// not a multiple of the kernels' batch of eight; settings no kernel reads and wrong inputs are errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "quant/codec.h"
#include "quant/packed_linear.h"
#include "support/errors.h"

using namespace quench;

namespace {

QuantizedTensor quantize(const std::string& spec, int64_t rows, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto W = torch::randn({rows, cols}, gen) * 0.02;
    const auto x = torch::randn({4 * cols, cols}, gen);
    const CalibStats calib{x.t().matmul(x) / static_cast<double>(4 * cols), torch::rand({cols}, gen) + 0.5};
    return make_codec(spec)->quantize(W, {&calib, seed, nullptr});
}

}  // namespace

TEST(PackedLinear, EqualsTheDequantizedProductForEveryKernelFamily) {
    const std::vector<std::string> specs = {"rtn:b=4,g=32",   "rtn:b=3,g=64,sym", "paretoq:b=2",
                                            "paretoq:b=1.58", "liftquant:D=16,d=8", "lcqat", "qamw:k=8,block=64"};
    auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const QuantizedTensor q = quantize(specs[i], 40, 128, i + 1);
        const auto Wd = make_codec(q.spec)->dequantize(q);
        const PackedLinear lin(q, 2);
        EXPECT_EQ(lin.out_features(), 40);
        EXPECT_EQ(lin.in_features(), 128);
        const auto x = torch::randn({3, 5, 128}, gen);  // 15 rows: a batch of 8 and a tail of 7
        const auto y = lin.forward(x);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{3, 5, 40})) << specs[i];
        const auto ref = x.to(torch::kFloat64).matmul(Wd.to(torch::kFloat64).t());
        // Bound per output: fp32 rounding of a 128-term sum, relative to sum |W x|.
        const auto scale = x.abs().to(torch::kFloat64).matmul(Wd.abs().to(torch::kFloat64).t());
        const double worst = ((y.to(torch::kFloat64) - ref).abs() / scale).max().item<double>();
        EXPECT_LT(worst, 1e-5) << specs[i];
        // A single row goes through the same kernels.
        EXPECT_TRUE(torch::allclose(lin.forward(x[1][2]), y[1][2], 1e-6, 1e-7)) << specs[i];
    }
}

TEST(PackedLinear, RefusesSettingsNoKernelReadsAndWrongInputs) {
    const std::string polar = test::error_of([] { PackedLinear(quantize("qamw:k=8,block=64,coding=polar", 8, 64, 1)); });
    EXPECT_NE(polar.find("no packed kernel"), std::string::npos) << "[" << polar << "]";
    const PackedLinear lin(quantize("rtn:b=4,g=32", 8, 64, 2));
    const std::string wrong = test::error_of([&] { lin.forward(torch::zeros({2, 63})); });
    EXPECT_NE(wrong.find("63"), std::string::npos) << wrong;
    EXPECT_NE(wrong.find("64"), std::string::npos) << wrong;
}
