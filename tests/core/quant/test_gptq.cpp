// GPTQ: beats RTN (and ParetoQ PTQ with its grid) in output error on the real model's layers with real
// calibration inputs; reduces to RTN exactly under an identity Hessian; dead columns, act_order with static
// groups, singular Hessians, cancellation and bad settings.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <tuple>

#include "analysis/layer_capture.h"
#include "analysis/layer_metrics.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "support/test_paths.h"
#include "support/weights.h"

using namespace quench;
using quench::test::trained_like;

namespace {

struct RealLayers {
    std::unique_ptr<LlamaModel> model = load_model(test::real_model_dir());
    std::vector<std::size_t> layers = model->layers().select_glob("model.layers.*");
    std::map<std::size_t, LayerInputStats> stats;
    RealLayers() {
        const auto tok = load_tokenizer(test::real_model_dir());
        const auto tokens =
            tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.train.txt"), true, 8000);
        CaptureOptions o;
        o.ctx = 128;
        o.hessian = true;
        o.sample_rows = 2048;
        stats = capture_layer_inputs(*model, layers, tokens, o);
    }
};

const RealLayers& real() {
    static RealLayers r;
    return r;
}

// ||X W^T - X W'^T||^2 / ||X W^T||^2 on the layer's sampled calibration inputs.
double output_error(const std::string& spec, std::size_t layer) {
    const LayerInputStats& s = real().stats.at(layer);
    const CalibStats calib{s.hessian(), s.abs_mean};
    const auto codec = make_codec(spec);
    const at::Tensor& W = real().model->original_weight(layer);
    return compare_weights(W, codec->dequantize(codec->quantize(W, {&calib, 0, nullptr})), s.sample).output_rel_error;
}

// Correlated inputs with unequal channel energies, like real activations.
CalibStats synthetic_calib(int64_t cols, uint64_t seed, int64_t n = 4096) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto mixed = torch::randn({n, cols / 2}, gen).matmul(torch::randn({cols / 2, cols}, gen));
    const auto x = mixed * (0.2 + torch::rand({cols}, gen)) + 0.1 * torch::randn({n, cols}, gen);
    return {x.t().matmul(x) / static_cast<double>(n), x.abs().mean(0)};
}

// tr((W - W') H (W - W')^T): the output error GPTQ minimises.
double hessian_error(const at::Tensor& W, const at::Tensor& Wq, const at::Tensor& H) {
    const auto d = (Wq - W).to(torch::kDouble);
    return (d.matmul(H.to(torch::kDouble)) * d).sum().item<double>();
}

bool same_parts(const QuantizedTensor& a, const QuantizedTensor& b) {
    if (a.parts.size() != b.parts.size()) return false;
    for (std::size_t i = 0; i < a.parts.size(); ++i)
        if (a.parts[i].name != b.parts[i].name || !torch::equal(a.parts[i].data, b.parts[i].data)) return false;
    return true;
}

// Passes when f throws quench::Error whose message contains text; otherwise shows what happened.
::testing::AssertionResult throws_with(const std::function<void()>& f, const std::string& text) {
    try {
        f();
    } catch (const Error& e) {
        if (std::string(e.what()).find(text) != std::string::npos) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "message '" << e.what() << "' lacks '" << text << "'";
    }
    return ::testing::AssertionFailure() << "nothing thrown, expected '" << text << "'";
}

}  // namespace

TEST(Gptq, BeatsRtnInOutputErrorOnTheRealModel) {
    for (int b : {2, 3, 4}) {
        const std::string tail = "b=" + std::to_string(b) + ",g=128";
        double sum_rtn = 0, sum_gptq = 0, sum_act = 0;
        for (std::size_t l : real().layers) {
            const double rtn = output_error("rtn:" + tail, l), gptq = output_error("gptq:" + tail, l),
                         act = output_error("gptq:" + tail + ",act_order", l);
            const std::string name = real().model->layers().at(l).name;
            EXPECT_LT(gptq, rtn) << tail << " " << name;
            EXPECT_LT(act, rtn) << tail << " act_order " << name;
            sum_rtn += rtn;
            sum_gptq += gptq;
            sum_act += act;
        }
        const double n = static_cast<double>(real().layers.size());
        std::cout << "[ output rel error, mean over " << n << " layers ] " << tail << ": rtn " << sum_rtn / n
                  << ", gptq " << sum_gptq / n << ", gptq act_order " << sum_act / n << "\n";
        EXPECT_LT(sum_gptq, 0.85 * sum_rtn) << tail;
    }
}

TEST(Gptq, ParetoQGridWithErrorFeedbackBeatsParetoQPtq) {
    for (const std::string b : {"1", "1.58", "2", "3", "4"}) {
        double sum_ptq = 0, sum_gptq = 0;
        for (std::size_t l : real().layers) {
            const double ptq = output_error("paretoq:b=" + b, l);
            const double gptq = output_error("gptq:b=" + b + ",g=0,grid=paretoq", l);
            EXPECT_LT(gptq, ptq) << "b=" << b << " " << real().model->layers().at(l).name;
            sum_ptq += ptq;
            sum_gptq += gptq;
        }
        const double n = static_cast<double>(real().layers.size());
        std::cout << "[ output rel error, mean over " << n << " layers ] b=" << b << ": paretoq " << sum_ptq / n
                  << ", gptq grid=paretoq " << sum_gptq / n << "\n";
    }
}

TEST(Gptq, IdentityHessianReducesToRtnExactly) {
    const auto W = trained_like(24, 256, 1);
    const CalibStats identity{torch::eye(256), {}};
    const std::vector<std::pair<std::string, std::string>> pairs = {
        {"gptq:b=3,g=32", "rtn:b=3,g=32"},
        {"gptq:b=4,g=0,sym", "rtn:b=4,g=0,sym"},
        {"gptq:b=2,g=128,act_order", "rtn:b=2,g=128"},
        {"gptq:b=1.58,g=0,grid=paretoq", "paretoq:b=1.58"},
        {"gptq:b=2,g=0,grid=paretoq,act_order", "paretoq:b=2"},
    };
    for (const auto& [gptq, plain] : pairs) {
        const auto q = make_codec(gptq)->quantize(W, {&identity, 0, nullptr});
        EXPECT_TRUE(same_parts(q, make_codec(plain)->quantize(W, {}))) << gptq;
    }
}

TEST(Gptq, LowersTheHessianWeightedErrorOnEveryGrid) {
    const auto W = trained_like(64, 256, 2);
    const CalibStats calib = synthetic_calib(256, 3);
    const std::vector<std::pair<std::string, std::string>> pairs = {
        {"gptq:b=2,g=32", "rtn:b=2,g=32"},       {"gptq:b=3,g=64,sym", "rtn:b=3,g=64,sym"},
        {"gptq:b=4,g=0,act_order", "rtn:b=4,g=0"}, {"gptq:b=1,g=0,grid=paretoq", "paretoq:b=1"},
        {"gptq:b=3,g=0,grid=paretoq", "paretoq:b=3"},
    };
    for (const auto& [gptq, plain] : pairs) {
        const auto g = make_codec(gptq), p = make_codec(plain);
        const double eg = hessian_error(W, g->dequantize(g->quantize(W, {&calib, 0, nullptr})), calib.hessian);
        const double ep = hessian_error(W, p->dequantize(p->quantize(W, {})), calib.hessian);
        EXPECT_LT(eg, 0.8 * ep) << gptq;
        EXPECT_DOUBLE_EQ(g->estimate_bits(64, 256).total_bits_per_weight,
                         p->estimate_bits(64, 256).total_bits_per_weight);
    }
}

TEST(Gptq, ShortLastGroupsReduceToRtnAndStillImprove) {
    // 300 columns in groups of 128 (and 200 in groups of 64): a short last group of 44 (8) columns, fitted
    // dynamically at its first column like the others, or statically with act_order.
    for (const auto& [cols, gptq, plain] : std::vector<std::tuple<int64_t, std::string, std::string>>{
             {300, "gptq:b=3,g=128", "rtn:b=3,g=128"},
             {300, "gptq:b=2,g=128,act_order", "rtn:b=2,g=128"},
             {200, "gptq:b=4,g=64,sym", "rtn:b=4,g=64,sym"}}) {
        const auto W = trained_like(32, cols, 4);
        const CalibStats identity{torch::eye(cols), {}};
        const auto g = make_codec(gptq), p = make_codec(plain);
        EXPECT_TRUE(same_parts(g->quantize(W, {&identity, 0, nullptr}), p->quantize(W, {}))) << gptq;
        const CalibStats calib = synthetic_calib(cols, 5);
        const double eg = hessian_error(W, g->dequantize(g->quantize(W, {&calib, 0, nullptr})), calib.hessian);
        const double ep = hessian_error(W, p->dequantize(p->quantize(W, {})), calib.hessian);
        EXPECT_LT(eg, 0.8 * ep) << gptq;
    }
}

TEST(Gptq, ActOrderUsesStaticGroupsAndChangesTheCodes) {
    const auto W = trained_like(32, 256, 4);
    const CalibStats calib = synthetic_calib(256, 5);
    const auto act = make_codec("gptq:b=3,g=64,act_order");
    const QuantizedTensor qa = act->quantize(W, {&calib, 0, nullptr});
    const QuantizedTensor qn = make_codec("gptq:b=3,g=64")->quantize(W, {&calib, 0, nullptr});
    const QuantizedTensor qr = make_codec("rtn:b=3,g=64")->quantize(W, {});
    // Static groups: fitted on the weight up front, exactly RTN's scales and zero codes.
    EXPECT_TRUE(torch::equal(qa.part("scales").data, qr.part("scales").data));
    EXPECT_TRUE(torch::equal(qa.part("zeros").data, qr.part("zeros").data));
    EXPECT_FALSE(torch::equal(qa.part("codes").data, qn.part("codes").data));
    EXPECT_TRUE(same_parts(qa, act->quantize(W, {&calib, 7, nullptr}))) << "deterministic";
}

TEST(Gptq, DeadColumnsAreZeroedAndTheRestStillImproves) {
    const auto W = trained_like(16, 128, 6);
    CalibStats calib = synthetic_calib(128, 7);
    for (int64_t c : {0, 5, 77}) {
        calib.hessian[c].zero_();
        calib.hessian.select(1, c).zero_();
    }
    const auto codec = make_codec("gptq:b=3,g=32");
    const auto Wq = codec->dequantize(codec->quantize(W, {&calib, 0, nullptr}));
    ASSERT_TRUE(torch::isfinite(Wq).all().item<bool>());
    for (int64_t c : {0, 5, 77}) EXPECT_EQ(Wq.select(1, c).abs().max().item<float>(), 0.0f) << c;
    const auto rtn = make_codec("rtn:b=3,g=32");
    const auto Wr = rtn->dequantize(rtn->quantize(W, {}));
    EXPECT_LT(hessian_error(W, Wq, calib.hessian), hessian_error(W, Wr, calib.hessian));
}

TEST(Gptq, RankDeficientHessianWithoutDampingStillWorks) {
    const auto W = trained_like(16, 128, 8);
    const CalibStats calib = synthetic_calib(128, 9, /*n=*/16);  // rank <= 16 of 128
    const auto codec = make_codec("gptq:b=4,g=32,damp=0");
    const auto Wq = codec->dequantize(codec->quantize(W, {&calib, 0, nullptr}));
    EXPECT_TRUE(torch::isfinite(Wq).all().item<bool>());
    EXPECT_LT(((Wq - W).norm() / W.norm()).item<double>(), 1.0);
}

TEST(Gptq, ClearErrors) {
    const auto W = trained_like(8, 128, 10);
    const auto codec = make_codec("gptq:b=4");
    EXPECT_TRUE(codec->needs_hessian());
    auto with = [&](const CalibStats& c) { return [&, c] { codec->quantize(W, {&c, 0, nullptr}); }; };
    EXPECT_TRUE(throws_with([&] { codec->quantize(W, {}); }, "GPTQ needs calibration data"));
    EXPECT_TRUE(throws_with(with({at::Tensor(), torch::ones({128})}), "GPTQ needs calibration data"));
    EXPECT_TRUE(throws_with(with({torch::eye(64), {}}), "[64, 64] but the weight has 128 columns"));
    // Indefinite: eigenvalues 3n - 2 and -2, beyond what damping up to 100% of the mean diagonal (1) repairs.
    EXPECT_TRUE(throws_with(with({torch::full({128, 128}, 3.0f) - 2 * torch::eye(128), {}}), "not positive definite"));
    auto nan = torch::eye(128);
    nan[3][4] = std::nanf("");
    EXPECT_TRUE(throws_with(with({nan, {}}), "non-finite"));

    EXPECT_TRUE(throws_with([] { make_codec("gptq:b=2.5"); }, "integer b in [2, 8]"));
    EXPECT_TRUE(throws_with([] { make_codec("gptq:b=1.58"); }, "integer b in [2, 8]"));
    EXPECT_TRUE(throws_with([] { make_codec("gptq:b=5,grid=paretoq"); }, "1, 1.58, 2, 3, 4"));
    EXPECT_TRUE(throws_with([] { make_codec("gptq:b=2,grid=paretoq,sym"); }, "sym applies to grid=int"));
    EXPECT_TRUE(throws_with([] { CodecSpec::parse("gptq:damp=2"); }, "damp must be in [0, 1]"));
    EXPECT_TRUE(throws_with([] { CodecSpec::parse("gptq:grid=nf4"); }, "grid must be one of int, paretoq"));
    EXPECT_EQ(CodecSpec::parse("gptq:b=3,g=128,act_order").to_string(), "gptq:b=3,g=128,act_order,damp=0.01,grid=int");
}

TEST(Gptq, CancellationStopsTheJob) {
    const auto W = trained_like(8, 256, 11);
    const CalibStats calib = synthetic_calib(256, 12);
    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(make_codec("gptq:b=4")->quantize(W, {&calib, 0, &cancel}), Cancelled);
}
