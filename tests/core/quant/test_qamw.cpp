// QAM-W: spec parsing, bit accounting counted by hand, error on a Gaussian source equal to the codebook's
// distortion, joint coding against the polar baseline (Gaussian source and the real model's layers), the
// activation-aware and random-sign options, and clear errors for bad settings.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <iostream>
#include <limits>

#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/lloyd_max.h"
#include "quant/qamw.h"
#include "support/test_paths.h"
#include "support/weights.h"

using namespace quench;
using quench::test::gaussian;

namespace {

double squared_error(const std::string& spec, const at::Tensor& W, const QuantizeContext& ctx = {}) {
    const auto codec = make_codec(spec);
    return (codec->dequantize(codec->quantize(W, ctx)) - W).pow(2).sum().item<double>();
}

double codec_rel_error(const std::string& spec, const at::Tensor& W, const QuantizeContext& ctx = {}) {
    return std::sqrt(squared_error(spec, W, ctx) / W.pow(2).sum().item<double>());
}

// Runs f and checks that it throws quench::Error with `part` in the message.
void expect_qamw_error(const std::function<void()>& f, const std::string& part) {
    try {
        f();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        return;
    }
    ADD_FAILURE() << "no error; expected one saying '" << part << "'";
}

}  // namespace

TEST(QamW, SpecsParseWithDefaultsAndPrintCanonically) {
    const CodecSpec s = CodecSpec::parse("qamw:k=11,block=128,act_scale");
    EXPECT_EQ(s.get_int("k"), 11);
    EXPECT_EQ(s.get_int("block"), 128);
    EXPECT_TRUE(s.get_flag("act_scale"));
    EXPECT_FALSE(s.get_flag("signs"));
    EXPECT_EQ(s.get_choice("coding"), "joint");
    EXPECT_EQ(s.to_string(), "qamw:k=11,block=128,coding=joint,act_scale,alpha=0.5");
    EXPECT_EQ(CodecSpec::parse("qamw"), CodecSpec::parse("qamw:k=11,block=128,coding=joint,alpha=0.5"));
    EXPECT_TRUE(make_codec(s)->needs_act_scale());
    EXPECT_FALSE(make_codec("qamw:k=7")->needs_act_scale());
    EXPECT_FALSE(make_codec(s)->needs_hessian());
    EXPECT_DOUBLE_EQ(make_codec("qamw:k=11")->estimate_bits(64, 256).code_bits_per_weight, 5.5);
    EXPECT_DOUBLE_EQ(make_codec("qamw:k=7")->estimate_bits(64, 256).code_bits_per_weight, 3.5);
}

TEST(QamW, BitAccountingMatchesAHandCount) {
    // 256 x 512 at k = 8: 65536 pairs x 8 bits = 4 bits per weight; 256 fp16 row norms = 16/512 per weight; the
    // shared codebook is 256 points x 2 coordinates x 16 bits = 8192 bits, 8192 / 131072 = 1/16 per weight.
    const auto W = gaussian({256, 512}, 1);
    const auto codec = make_codec("qamw:k=8,block=128");
    const QuantizedTensor q = codec->quantize(W, {});
    EXPECT_DOUBLE_EQ(q.code_bits_per_weight(), 4.0);
    EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), 4.0 + 16.0 / 512 + 1.0 / 16);
    EXPECT_EQ(q.part("codes").data.numel(), 65536);  // bytes
    EXPECT_EQ(q.part("norms").data.scalar_type(), torch::kFloat16);
    const QuantPart& book = q.part("codebook");
    EXPECT_TRUE(book.shared);
    EXPECT_EQ(book.role, PartRole::Codebook);
    EXPECT_EQ(book.bits, 8192);
    EXPECT_EQ(book.data.sizes(), (std::vector<int64_t>{256, 2}));
    EXPECT_DOUBLE_EQ(codec->estimate_bits(256, 512).total_bits_per_weight, q.total_bits_per_weight());

    // Every layer with the setting stores the identical codebook, so model totals may count it once.
    EXPECT_TRUE(torch::equal(codec->quantize(gaussian({64, 256}, 2), {}).part("codebook").data, book.data));

    // act_scale adds 512 fp16 channel scales (1/16 bit per weight), signs a 64-bit seed.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const CalibStats calib{{}, torch::rand({512}, gen) + 0.1};
    const QuantizedTensor qa = make_codec("qamw:k=8,act_scale,signs")->quantize(W, {&calib, 5, nullptr});
    EXPECT_DOUBLE_EQ(qa.total_bits_per_weight(), 4.0 + 16.0 / 512 + 1.0 / 16 + 1.0 / 16 + 64.0 / 131072);

    // Polar: the shared table is 2^a fp16 radii (phases are uniform, nothing stored).
    const PolarSplit split = qamw_polar_split(8);
    const QuantizedTensor qp = make_codec("qamw:k=8,coding=polar")->quantize(W, {});
    EXPECT_EQ(qp.part("amplitudes").data.numel(), int64_t(1) << split.amplitude_bits);
    EXPECT_DOUBLE_EQ(qp.total_bits_per_weight(), 4.0 + 16.0 / 512 + (16.0 * (1 << split.amplitude_bits)) / 131072);
}

TEST(QamW, GaussianSourceErrorIsTheCodebookDistortionAndFallsWithK) {
    // An i.i.d. Gaussian row, normalised and rotated, is a set of N(0,1) pairs: the relative squared error is
    // the codebook's distortion per dimension, measured here by brute force on independent samples.
    const auto W = gaussian({256, 1024}, 7);
    const auto pairs = gaussian({1 << 16, 2}, 8);
    double prev = 1.0;
    for (int k = 4; k <= 12; ++k) {
        const double rel2 = std::pow(codec_rel_error("qamw:k=" + std::to_string(k), W), 2);
        EXPECT_LT(rel2, prev) << "k=" << k;
        prev = rel2;
        if (k % 2 == 0 && k <= 8) {
            const auto& C = gaussian_codebook_2d(int64_t(1) << k);
            const auto idx = (pairs.unsqueeze(1) - C.unsqueeze(0)).pow(2).sum(-1).argmin(1);
            const double d = (pairs - C.index_select(0, idx)).pow(2).mean().item<double>();
            EXPECT_NEAR(rel2, d, 0.03 * d) << "k=" << k;
        }
    }
}

TEST(QamW, JointCodingBeatsPolarCodingAtEqualBitsOnAGaussianSource) {
    const auto W = gaussian({128, 1024}, 9);
    for (int k : {4, 6, 8, 10, 12}) {
        const std::string ks = "qamw:k=" + std::to_string(k);
        const double joint = codec_rel_error(ks, W), polar = codec_rel_error(ks + ",coding=polar", W);
        const PolarSplit split = qamw_polar_split(k);
        std::cout << "[ gaussian ] k=" << k << " joint " << joint << " polar " << polar << " (split "
                  << split.amplitude_bits << "+" << split.phase_bits << ")\n";
        EXPECT_LT(joint, polar) << "k=" << k;
        // The polar design's predicted error, pair_mse / 2 per dimension, is what it achieves.
        EXPECT_NEAR(polar * polar, split.pair_mse / 2, 0.03 * split.pair_mse / 2) << "k=" << k;
    }
}

TEST(QamW, PolarSplitIsTheBestOfAllSplits) {
    for (int k = 4; k <= 12; ++k) {
        const PolarSplit best = qamw_polar_split(k);
        EXPECT_EQ(best.amplitude_bits + best.phase_bits, k);
        for (int a = 0; a < k; ++a) {
            const double half = M_PI / std::pow(2.0, k - a), g = std::sin(half) / half;
            EXPECT_LE(best.pair_mse, 2 * (1 - g * g) + g * g * lloyd_max_rayleigh(1 << a).mse + 1e-12) << k << " " << a;
        }
    }
}

TEST(QamW, JointCodingBeatsPolarCodingOnTheRealModel) {
    const auto model = load_model(test::real_model_dir());
    for (int k : {6, 8, 11}) {
        const std::string ks = "qamw:k=" + std::to_string(k);
        double joint_total = 0, polar_total = 0, norm_total = 0;
        int joint_wins = 0;
        for (std::size_t i = 0; i < model->layers().size(); ++i) {
            const auto W = model->original_weight(i).to(torch::kFloat32);
            const double joint = squared_error(ks, W), polar = squared_error(ks + ",coding=polar", W);
            joint_total += joint;
            polar_total += polar;
            norm_total += W.pow(2).sum().item<double>();
            joint_wins += joint < polar;
        }
        const double rj = std::sqrt(joint_total / norm_total), rp = std::sqrt(polar_total / norm_total);
        std::cout << "[ real model ] k=" << k << " joint " << rj << " polar " << rp << " joint better on "
                  << joint_wins << "/" << model->layers().size() << " layers\n";
        EXPECT_LT(rj, rp) << "k=" << k;
        EXPECT_EQ(joint_wins, static_cast<int>(model->layers().size())) << "k=" << k;
    }
}

TEST(QamW, DeterministicAndSeedOnlyMattersWithSigns) {
    const auto W = gaussian({32, 256}, 10);
    for (const std::string spec : {"qamw:k=9", "qamw:k=9,coding=polar", "qamw:k=9,signs"}) {
        const auto codec = make_codec(spec);
        const auto a = codec->quantize(W, {nullptr, 1, nullptr}), b = codec->quantize(W, {nullptr, 1, nullptr});
        const auto c = codec->quantize(W, {nullptr, 2, nullptr});
        ASSERT_EQ(a.parts.size(), b.parts.size());
        for (std::size_t i = 0; i < a.parts.size(); ++i)
            EXPECT_TRUE(torch::equal(a.parts[i].data, b.parts[i].data)) << spec << " " << a.parts[i].name;
        EXPECT_EQ(torch::equal(a.part("codes").data, c.part("codes").data), spec != "qamw:k=9,signs") << spec;
    }
}

TEST(QamW, RandomSignsRescueRowsTheHadamardConcentrates) {
    // A constant row maps to one spike per Hadamard block, far outside a Gaussian codebook; random signs
    // first turn it into a +-c row that rotates to a Gaussian-like one.
    const auto W = torch::ones({16, 256}) + 0.01 * gaussian({16, 256}, 11);
    const double plain = codec_rel_error("qamw:k=8", W),
                 signs = codec_rel_error("qamw:k=8,signs", W, {nullptr, 3, nullptr});
    EXPECT_LT(signs, 0.5 * plain) << "plain " << plain << " signs " << signs;
    EXPECT_LT(signs, 0.15);
}

TEST(QamW, ActivationAwareScalingLowersOutputError) {
    const int64_t cols = 512;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
    const auto x = torch::randn({4096, cols}, gen) * torch::exp(torch::randn({cols}, gen));  // uneven channels
    const CalibStats calib{{}, x.abs().mean(0)};
    const auto W = 0.02 * gaussian({64, cols}, 13);
    auto output_error = [&](const std::string& spec) {
        const auto codec = make_codec(spec);
        const auto Wq = codec->dequantize(codec->quantize(W, {&calib, 0, nullptr}));
        return (x.matmul((Wq - W).t())).norm().item<double>() / x.matmul(W.t()).norm().item<double>();
    };
    const double plain = output_error("qamw:k=8"), aware = output_error("qamw:k=8,act_scale");
    EXPECT_LT(aware, 0.9 * plain) << "plain " << plain << " act_scale " << aware;
    const QuantizedTensor q = make_codec("qamw:k=8,act_scale")->quantize(W, {&calib, 0, nullptr});
    EXPECT_EQ(q.part("act_scale").role, PartRole::Transform);
    EXPECT_EQ(q.part("act_scale").data.scalar_type(), torch::kFloat16);
    EXPECT_NEAR(q.part("act_scale").data.to(torch::kFloat64).log().mean().item<double>(), 0.0, 1e-3);
}

TEST(QamW, ZeroRowsStayZero) {
    auto W = gaussian({8, 256}, 14);
    W[3].zero_();
    for (const std::string spec : {"qamw:k=6", "qamw:k=6,coding=polar"}) {
        const auto codec = make_codec(spec);
        const auto Wq = codec->dequantize(codec->quantize(W, {}));
        EXPECT_TRUE(torch::isfinite(Wq).all().item<bool>()) << spec;
        EXPECT_EQ(Wq[3].abs().max().item<float>(), 0.0f) << spec;
    }
}

TEST(QamW, BadSettingsGiveClearErrors) {
    const auto W = gaussian({8, 640}, 15);
    expect_qamw_error([] { make_codec("qamw:block=100"); }, "block must be a power of two, got 100");
    expect_qamw_error([] { CodecSpec::parse("qamw:k=3"); }, "k must be in [4, 12]");
    expect_qamw_error([] { CodecSpec::parse("qamw:k=13"); }, "k must be in [4, 12]");
    expect_qamw_error([] { CodecSpec::parse("qamw:coding=qam"); }, "coding must be one of joint, polar");
    // block= is the largest block: 640 = 5 x 128 takes 128, and codes exactly as block=128 does.
    const auto b256 = make_codec("qamw:block=256");
    EXPECT_EQ(qamw_block(b256->spec(), 640), 128);
    EXPECT_EQ(qamw_block(b256->spec(), 576), 64);
    EXPECT_EQ(qamw_block(b256->spec(), 4096), 256);
    EXPECT_EQ(qamw_block(b256->spec(), 2 * 43), 2);
    const QuantizedTensor q256 = b256->quantize(W, {}), q128 = make_codec("qamw:block=128")->quantize(W, {});
    EXPECT_TRUE(torch::equal(q256.part("codes").data, q128.part("codes").data));
    EXPECT_TRUE(torch::equal(b256->dequantize(q256), make_codec("qamw:block=128")->dequantize(q128)));
    expect_qamw_error([&] { b256->quantize(gaussian({8, 641}, 15), {}); }, "input width 641 is not even");
    expect_qamw_error([&] { b256->estimate_bits(8, 641); }, "is not even");

    const auto aware = make_codec("qamw:k=8,act_scale");
    expect_qamw_error([&] { aware->quantize(W, {}); }, "act_scale needs calibration statistics");
    const CalibStats hessian_only{torch::eye(640), {}};
    expect_qamw_error([&] { aware->quantize(W, {&hessian_only, 0, nullptr}); }, "CalibStats::act_scale");
    const CalibStats short_scale{{}, torch::ones({320})};
    expect_qamw_error([&] { aware->quantize(W, {&short_scale, 0, nullptr}); }, "act_scale has 320 channels");

    const QuantizedTensor q8 = make_codec("qamw:k=8")->quantize(W, {});
    expect_qamw_error([&] { make_codec("qamw:k=9")->dequantize(q8); }, "cannot decode a tensor quantized as qamw:k=8");
    QuantizedTensor cut = q8;
    for (auto& p : cut.parts)
        if (p.name == "norms") p.data = p.data.slice(0, 0, 4);
    expect_qamw_error([&] { make_codec("qamw:k=8")->dequantize(cut); }, "part 'norms' has 4 values, expected 8");

    auto bad = W.clone();
    bad[0][0] = std::numeric_limits<float>::quiet_NaN();
    expect_qamw_error([&] { make_codec("qamw:k=8")->quantize(bad, {}); }, "non-finite");

    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(make_codec("qamw:k=8")->quantize(W, {nullptr, 0, &cancel}), Cancelled);
}
