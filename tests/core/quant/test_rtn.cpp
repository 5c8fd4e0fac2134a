// RTN on the integer grids: exact reproduction of grid-valued weights, the nearest-level bound, error
// falling with bits, symmetric vs asymmetric on a shifted distribution, hand-computed bit costs, clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "quant/codec.h"
#include "support/errors.h"
#include "support/weights.h"

using namespace quench;
using quench::test::rel_error;
using quench::test::trained_like;

namespace {

at::Tensor roundtrip(const std::string& spec, const at::Tensor& W) {
    const auto codec = make_codec(spec);
    return codec->dequantize(codec->quantize(W, {}));
}

using quench::test::error_of;

// Per group: integer codes k with both ends of the range present, times an fp16-exact scale, so the
// min/max (asymmetric) or max|w| (symmetric) fit recovers the scale and every weight exactly.
at::Tensor grid_valued(int b, bool sym, int64_t rows, int64_t cols, int64_t group, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t maxq = (int64_t(1) << b) - 1, half = (int64_t(1) << (b - 1)) - 1;
    const int64_t groups = cols / group;
    at::Tensor k;
    if (sym) {
        k = torch::randint(-half, half + 1, {rows * groups, group}, gen);
        k.select(1, 0).fill_(half);
        k.select(1, 1).fill_(-half);
    } else {
        k = torch::randint(0, maxq + 1, {rows * groups, group}, gen);
        k.select(1, 0).fill_(0);
        k.select(1, 1).fill_(maxq);
        k -= torch::randint(0, maxq + 1, {rows * groups, 1}, gen);  // a zero code per group
    }
    // Scales m * 2^-e with small odd m: exact in fp16 and in the fit's divisions.
    const auto m = torch::randint(0, 4, {rows * groups, 1}, gen) * 2 + 1;
    const auto scale = m.to(torch::kFloat) * std::ldexp(1.0, -10);
    return (k.to(torch::kFloat) * scale).view({rows, cols});
}

}  // namespace

TEST(Rtn, GridValuedWeightsAreReproducedBitExactly) {
    for (int b = 2; b <= 8; ++b)
        for (bool sym : {false, true})
            for (int64_t g : {0, 32, 128}) {
                const int64_t cols = 256, group = g == 0 ? cols : g;
                const auto W = grid_valued(b, sym, 12, cols, group, 100 + b);
                const std::string spec = "rtn:b=" + std::to_string(b) + ",g=" + std::to_string(g) + (sym ? ",sym" : "");
                EXPECT_TRUE(torch::equal(roundtrip(spec, W), W)) << spec;
            }
}

TEST(Rtn, EveryWeightWithinHalfAStepOfItsGroupScale) {
    const auto W = trained_like(16, 256, 1);
    // The fitted range covers every weight, so rounding is off by at most half a step, plus, for the
    // asymmetric grid, what rounding the scale to fp16 (relative 2^-11) takes off its 2^b - 1 steps.
    const std::vector<std::pair<std::string, double>> cases = {{"rtn:b=3,g=32", 0.5 + 7 * std::ldexp(1.0, -11)},
                                                               {"rtn:b=2,g=0", 0.5 + 3 * std::ldexp(1.0, -11)},
                                                               {"rtn:b=4,g=128,sym", 0.5}};
    for (const auto& [spec, steps] : cases) {
        const auto codec = make_codec(spec);
        const QuantizedTensor q = codec->quantize(W, {});
        const auto scales = q.part("scales").data.to(torch::kFloat);
        const int64_t group = W.size(1) / scales.size(1);
        const auto err = (codec->dequantize(q) - W).abs().view({W.size(0), scales.size(1), group});
        EXPECT_TRUE((err <= scales.unsqueeze(2) * steps * (1 + 1e-6)).all().item<bool>()) << spec;
        EXPECT_TRUE((err.amax(2) > scales * 0.25).any().item<bool>()) << spec << ": the bound is not vacuous";
    }
}

TEST(Rtn, ErrorFallsWithEveryExtraBitInEveryGroup) {
    const auto W = trained_like(32, 256, 2);
    for (const std::string tail : {",g=32", ",g=128,sym", ",g=0"}) {
        at::Tensor prev_group_mse;
        double prev = 1e9;
        for (int b = 2; b <= 8; ++b) {
            const auto Wq = roundtrip("rtn:b=" + std::to_string(b) + tail, W);
            const auto group_mse = (Wq - W).pow(2).view({-1, 32}).mean(1);
            const double e = rel_error(Wq, W);
            EXPECT_LT(e, prev) << "b=" << b << tail;
            if (prev_group_mse.defined()) {
                EXPECT_TRUE((group_mse < prev_group_mse).all().item<bool>()) << "b=" << b << tail;
            }
            prev = e;
            prev_group_mse = group_mse;
        }
        EXPECT_LT(prev, 0.01) << tail;
    }
}

TEST(Rtn, AsymmetricWinsOnAShiftedDistributionAndTiesOnACentredOne) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const auto centred = torch::randn({32, 256}, gen) * 0.02;
    const auto shifted = centred + 0.05;  // every row's mass sits right of zero
    for (int b : {3, 4}) {
        const std::string base = "rtn:b=" + std::to_string(b) + ",g=128";
        const double asym = rel_error(roundtrip(base, shifted), shifted),
                     sym = rel_error(roundtrip(base + ",sym", shifted), shifted);
        // Symmetric spends half its levels on negative values that never occur.
        EXPECT_LT(asym * 1.5, sym) << base;
        const double asym_c = rel_error(roundtrip(base, centred), centred),
                     sym_c = rel_error(roundtrip(base + ",sym", centred), centred);
        EXPECT_LT(std::abs(asym_c - sym_c), 0.35 * sym_c) << base;
    }
}

TEST(Rtn, BitAccountingByHand) {
    const auto W = trained_like(256, 512, 4);
    {
        const auto codec = make_codec("rtn:b=4,g=128,sym");
        const QuantizedTensor q = codec->quantize(W, {});
        EXPECT_EQ(q.part("codes").bits, 256 * 512 * 4);
        EXPECT_EQ(q.part("codes").data.numel(), 256 * 512 / 2);
        EXPECT_EQ(q.part("scales").bits, 256 * 4 * 16);
        EXPECT_EQ(q.part("scales").data.scalar_type(), torch::kHalf);
        EXPECT_THROW(q.part("zeros"), Error);
        EXPECT_DOUBLE_EQ(q.code_bits_per_weight(), 4.0);
        EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), 4.0 + 16.0 / 128);
        EXPECT_DOUBLE_EQ(codec->estimate_bits(256, 512).total_bits_per_weight, 4.0 + 16.0 / 128);
    }
    {
        // Asymmetric adds a 4-bit zero code per group.
        const auto codec = make_codec("rtn:b=4,g=128");
        const QuantizedTensor q = codec->quantize(W, {});
        EXPECT_EQ(q.part("zeros").bits, 256 * 4 * 4);
        EXPECT_DOUBLE_EQ(q.code_bits_per_weight(), 4.0);
        EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), 4.0 + 16.0 / 128 + 4.0 / 128);
        EXPECT_DOUBLE_EQ(codec->estimate_bits(256, 512).total_bits_per_weight, 4.15625);
    }
    // Odd shapes and widths that cross byte boundaries: the estimate is what the parts cost.
    for (const std::string spec : {"rtn:b=3,g=0", "rtn:b=5,g=32", "rtn:b=7,g=64,sym"}) {
        const auto codec = make_codec(spec);
        const auto w = trained_like(13, 192, 5);
        const QuantizedTensor q = codec->quantize(w, {});
        const BitsEstimate est = codec->estimate_bits(13, 192);
        EXPECT_DOUBLE_EQ(est.code_bits_per_weight, q.code_bits_per_weight()) << spec;
        EXPECT_DOUBLE_EQ(est.total_bits_per_weight, q.total_bits_per_weight()) << spec;
    }
    EXPECT_DOUBLE_EQ(make_codec("rtn:b=3,g=0")->estimate_bits(13, 192).total_bits_per_weight, 3.0 + 19.0 / 192);
}

TEST(Rtn, QuantizeIsDeterministic) {
    const auto W = trained_like(24, 256, 6);
    const auto codec = make_codec("rtn:b=3,g=64");
    const QuantizedTensor a = codec->quantize(W, {}), b = codec->quantize(W.clone(), {nullptr, 99, nullptr});
    ASSERT_EQ(a.parts.size(), 3u);
    ASSERT_EQ(a.parts.size(), b.parts.size());
    for (std::size_t i = 0; i < a.parts.size(); ++i)
        EXPECT_TRUE(torch::equal(a.parts[i].data, b.parts[i].data)) << a.parts[i].name;
}

TEST(Rtn, BadSpecsAndShapesGiveClearErrors) {
    EXPECT_NE(error_of([] { CodecSpec::parse("rtn:b=0"); }).find("b must be in [2, 8]"), std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("rtn:b=9"); }).find("b must be in [2, 8]"), std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("rtn:b=4,g=100"); }).find("g must be one of 0, 32, 64, 128"),
              std::string::npos);
    const auto codec = make_codec("rtn:b=4,g=128");
    EXPECT_NE(error_of([&] { codec->estimate_bits(0, 96); }).find("empty weight [0, 96]"), std::string::npos);
    auto bad = torch::zeros({4, 128});
    bad[1][2] = std::nanf("");
    EXPECT_NE(error_of([&] { codec->quantize(bad, {}); }).find("non-finite"), std::string::npos);
    // Parts made under another setting are refused, not misread.
    const QuantizedTensor q3 = make_codec("rtn:b=3,g=128")->quantize(torch::ones({4, 128}), {});
    EXPECT_NE(error_of([&] { codec->dequantize(q3); }).find("quantized with rtn:b=3"), std::string::npos);
    QuantizedTensor q4 = codec->quantize(torch::ones({4, 128}), {});
    q4.parts[1].data = q4.parts[1].data.view({2, 2});
    EXPECT_NE(error_of([&] { codec->dequantize(q4); }).find("part 'scales' must be fp16 [4, 1]"), std::string::npos);
}

TEST(Rtn, AShortLastGroupIsQuantizedAsItsOwnGroup) {
    // 576 columns (SmolLM2's hidden size) in groups of 128: four whole groups and one of 64. Each group,
    // the short one included, must come out exactly as that slice quantized alone with one scale per row.
    for (const std::string spec : {"rtn:b=4,g=128", "rtn:b=3,g=64,sym", "rtn:b=2,g=32"}) {
        const int64_t rows = 6, cols = spec == "rtn:b=2,g=32" ? 172 : 576, g = make_codec(spec)->spec().get_int("g");
        const auto W = trained_like(rows, cols, 17);
        const auto codec = make_codec(spec);
        const QuantizedTensor q = codec->quantize(W, {});
        const int64_t groups = (cols + g - 1) / g;
        ASSERT_EQ(q.part("scales").data.sizes(), (at::IntArrayRef{rows, groups})) << spec;
        const auto Wq = codec->dequantize(q);
        const bool sym = spec.find("sym") != std::string::npos;
        const auto slice_codec = make_codec(spec.substr(0, spec.find(",g=")) + ",g=0" + (sym ? ",sym" : ""));
        for (int64_t k = 0; k < groups; ++k) {
            const int64_t c0 = k * g, width = std::min(g, cols - c0);
            const auto slice = W.narrow(1, c0, width).contiguous();
            const auto want = slice_codec->dequantize(slice_codec->quantize(slice, {}));
            EXPECT_TRUE(torch::equal(Wq.narrow(1, c0, width), want)) << spec << ", group " << k << " of width " << width;
        }
        // Bits: the codes, and one scale (plus zero code) per (row, group), the short group's counted whole.
        const int b = static_cast<int>(codec->spec().get_int("b"));
        const int64_t zero_bits = sym ? 0 : b;
        const double want_bits = double(rows * cols * b + rows * groups * (16 + zero_bits)) / double(rows * cols);
        EXPECT_DOUBLE_EQ(codec->estimate_bits(rows, cols).total_bits_per_weight, want_bits) << spec;
        EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), want_bits) << spec;
    }
    // A group wider than the weight is one group per row.
    const auto W = trained_like(4, 96, 3);
    EXPECT_TRUE(torch::equal(roundtrip("rtn:b=4,g=128", W), roundtrip("rtn:b=4,g=0", W)));
}

TEST(Rtn, ZeroGroupsStayZero) {
    auto W = trained_like(8, 128, 7);
    W.narrow(0, 2, 1).zero_();
    for (const std::string spec : {"rtn:b=2,g=32", "rtn:b=4,g=32,sym"}) {
        const auto Wq = roundtrip(spec, W);
        EXPECT_TRUE(torch::isfinite(Wq).all().item<bool>()) << spec;
        EXPECT_EQ(Wq[2].abs().max().item<float>(), 0.0f) << spec;
    }
}
