// ParetoQ grids as PTQ: the documented level sets and alpha initialisations (facebookresearch/ParetoQ
// utils_quant.py), nearest-level rounding, ternary packing at 1.6 bits, hand-computed bit costs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "common/error.h"
#include "quant/codec.h"
#include "support/weights.h"

using namespace quench;
using quench::test::trained_like;

namespace {

struct Grid {
    std::string b;
    std::vector<double> levels;  // in units of alpha
    at::Tensor (*alpha)(const at::Tensor& W);
};

at::Tensor fp16(const at::Tensor& t) { return t.to(torch::kHalf).to(torch::kFloat); }

std::vector<Grid> grids() {
    return {
        {"1", {-1, 1}, [](const at::Tensor& W) { return fp16(W.abs().mean(1)); }},
        {"1.58", {-2.0 / 3, 0, 2.0 / 3}, [](const at::Tensor& W) { return fp16(W.abs().amax(1)); }},
        {"2", {-0.75, -0.25, 0.25, 0.75}, [](const at::Tensor& W) { return fp16(W.abs().amax(1)); }},
        {"3", {-4, -3, -2, -1, 0, 1, 2, 3}, [](const at::Tensor& W) { return fp16(W.abs().amax(1) / 3); }},
        {"4",
         {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7},
         [](const at::Tensor& W) { return fp16(W.abs().amax(1) / 7); }},
    };
}

}  // namespace

TEST(ParetoQ, LevelSetsAndAlphaInitAreTheReferenceOnes) {
    const auto W = trained_like(16, 640, 1);
    for (const Grid& g : grids()) {
        const auto codec = make_codec("paretoq:b=" + g.b);
        const QuantizedTensor q = codec->quantize(W, {});
        const auto alpha = q.part("scales").data.to(torch::kFloat);
        ASSERT_EQ(alpha.sizes(), (std::vector<int64_t>{16, 1})) << "one alpha per output row";
        EXPECT_TRUE(torch::equal(alpha.view({16}), g.alpha(W))) << "b=" << g.b;
        const auto units = codec->dequantize(q) / alpha;
        for (int64_t r = 0; r < W.size(0); ++r) {
            const auto u = std::get<0>(torch::_unique(units[r].to(torch::kDouble)));
            std::set<int> used;
            for (int64_t i = 0; i < u.numel(); ++i) {
                const double v = u[i].item<double>();
                int hit = -1;
                for (std::size_t l = 0; l < g.levels.size(); ++l)
                    if (std::abs(v - g.levels[l]) < 1e-6) hit = static_cast<int>(l);
                EXPECT_GE(hit, 0) << "b=" << g.b << " row " << r << ": value " << v << " x alpha is not a level";
                used.insert(hit);
            }
            if (g.levels.size() <= 4) {
                EXPECT_EQ(used.size(), g.levels.size())
                    << "b=" << g.b << " row " << r << ": a 640-wide row uses every level";
            } else {
                // LSQ: alpha = max|w| / (2^(b-1) - 1) puts the largest weight on +-(2^(b-1) - 1) and leaves the
                // most negative level unused.
                const int top = static_cast<int>(g.levels.size()) - 1;
                EXPECT_EQ(used.count(0), 0u) << "b=" << g.b << " row " << r;
                const bool max_positive = W[r].max().item<float>() >= -W[r].min().item<float>();
                EXPECT_EQ(used.count(max_positive ? top : 1), 1u) << "b=" << g.b << " row " << r;
            }
        }
    }
}

TEST(ParetoQ, EveryWeightGoesToItsNearestLevel) {
    const auto W = trained_like(8, 640, 2);
    for (const Grid& g : grids()) {
        const auto codec = make_codec("paretoq:b=" + g.b);
        const auto Wq = codec->dequantize(codec->quantize(W, {}));
        const auto alpha = g.alpha(W).view({8, 1, 1});
        const auto levels = torch::tensor(g.levels, torch::kDouble).to(torch::kFloat).view({1, 1, -1}) * alpha;
        const auto best = (W.unsqueeze(2) - levels).abs().amin(2);
        EXPECT_TRUE(((Wq - W).abs() <= best + 1e-7).all().item<bool>()) << "b=" << g.b;
    }
}

TEST(ParetoQ, BitAccountingByHand) {
    const auto W = trained_like(16, 640, 3);
    const double scale_bits = 16.0 / 640;
    const std::vector<std::pair<std::string, double>> code_bits = {
        {"1", 1.0}, {"1.58", 1.6}, {"2", 2.0}, {"3", 3.0}, {"4", 4.0}};
    for (const auto& [b, bits] : code_bits) {
        const auto codec = make_codec("paretoq:b=" + b);
        const QuantizedTensor q = codec->quantize(W, {});
        EXPECT_DOUBLE_EQ(q.code_bits_per_weight(), bits) << b;
        EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), bits + scale_bits) << b;
        EXPECT_DOUBLE_EQ(codec->estimate_bits(16, 640).total_bits_per_weight, bits + scale_bits) << b;
        EXPECT_EQ(q.parts.size(), 2u) << "codes and scales only: no zero points";
    }
    // Ternary: 5 trits per byte.
    const QuantizedTensor t = make_codec("paretoq:b=1.58")->quantize(W, {});
    EXPECT_EQ(t.part("codes").data.numel(), 16 * 640 / 5);
    EXPECT_LE(t.part("codes").data.max().item<int>(), 242);
    // A count of trits that is not a multiple of 5: ceil(8 * 21 / 5) = 34 bits in 5 bytes.
    const auto codec = make_codec("paretoq:b=1.58");
    const QuantizedTensor odd = codec->quantize(trained_like(3, 7, 4), {});
    EXPECT_EQ(odd.part("codes").bits, 34);
    EXPECT_EQ(odd.part("codes").data.numel(), 5);
    EXPECT_DOUBLE_EQ(codec->estimate_bits(3, 7).total_bits_per_weight, odd.total_bits_per_weight());
    EXPECT_DOUBLE_EQ(odd.total_bits_per_weight(), (34.0 + 3 * 16) / 21);
}

TEST(ParetoQ, MoreBitsLessErrorFromTwoBitsUp) {
    const auto W = trained_like(32, 640, 5);
    double prev = 1e9;
    for (const std::string b : {"2", "3", "4"}) {
        const auto codec = make_codec("paretoq:b=" + b);
        const double e = ((codec->dequantize(codec->quantize(W, {})) - W).norm() / W.norm()).item<double>();
        EXPECT_LT(e, prev) << b;
        prev = e;
    }
}

TEST(ParetoQ, AlphaFloorAndZeroRows) {
    auto W = trained_like(4, 64, 6);
    W[1].zero_();
    for (const Grid& g : grids()) {
        const auto codec = make_codec("paretoq:b=" + g.b);
        const QuantizedTensor q = codec->quantize(W, {});
        EXPECT_EQ(q.part("scales").data[1][0].item<float>(), fp16(torch::tensor(1e-5f)).item<float>()) << g.b;
        const auto row = codec->dequantize(q)[1];
        // Binary and SEQ have no zero level: 0 sits on a midpoint and goes up, to +alpha and +alpha/4.
        const float alpha = q.part("scales").data[1][0].item<float>();
        const float expect = g.b == "1" ? alpha : g.b == "2" ? 0.25f * alpha : 0.0f;
        EXPECT_EQ(row.min().item<float>(), expect) << g.b;
        EXPECT_EQ(row.max().item<float>(), expect) << g.b;
    }
}

TEST(ParetoQ, DeterministicAndSpecsChecked) {
    const auto W = trained_like(8, 640, 7);
    const auto codec = make_codec("paretoq:b=1.58");
    const QuantizedTensor a = codec->quantize(W, {}), b = codec->quantize(W, {nullptr, 5, nullptr});
    for (std::size_t i = 0; i < a.parts.size(); ++i) EXPECT_TRUE(torch::equal(a.parts[i].data, b.parts[i].data));
    EXPECT_EQ(CodecSpec::parse("paretoq").to_string(), "paretoq:b=2");
    try {
        CodecSpec::parse("paretoq:b=1.5");
        FAIL() << "b=1.5 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("b must be one of 1, 1.58, 2, 3, 4"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(codec->needs_hessian());
}
