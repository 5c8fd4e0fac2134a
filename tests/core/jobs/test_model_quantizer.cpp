// Quantizing the real model's layers: metrics match direct computations, more bits give lower KL, the
// model's weights are replaced and restorable, and misuse fails clearly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "analysis/layer_metrics.h"
#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "jobs/model_quantizer.h"
#include "support/errors.h"
#include "support/test_paths.h"
#include "support/tiny_model.h"

using namespace quench;

namespace {

struct QuantizerData {
    std::unique_ptr<Tokenizer> tok = load_tokenizer(test::real_model_dir());
    std::vector<int32_t> calib =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.train.txt"), true, 4096);
    std::vector<int32_t> eval =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.eval.txt"), true, 4096);
};

const QuantizerData& quantizer_data() {
    static QuantizerData d;
    return d;
}

double mean_kl(LlamaModel& m) {
    EvalOptions o;
    o.ctx = 256;
    return evaluate_kl({&m, LlamaModel::Weights::Original}, {&m}, quantizer_data().eval, o,
                       quantizer_data().tok->bos_id())
        .kl_mean;
}

QuantizeOptions options() {
    QuantizeOptions o;
    o.capture.ctx = 128;
    o.capture.sample_rows = 256;
    return o;
}

}  // namespace

TEST(LayerMetrics, KnownValues) {
    auto W = torch::tensor({3.0f, 4.0f, 0.0f, 0.0f}).view({2, 2});
    auto Wq = torch::tensor({3.0f, 3.0f, 0.0f, 0.0f}).view({2, 2});
    auto x = torch::tensor({0.0f, 1.0f}).view({1, 2});
    auto m = compare_weights(W, Wq, x);
    EXPECT_DOUBLE_EQ(m.weight_mse, 0.25);
    EXPECT_DOUBLE_EQ(m.rel_fro_error, 0.2);
    EXPECT_NEAR(m.sqnr_db, 10.0 * std::log10(25.0), 1e-12);
    EXPECT_DOUBLE_EQ(m.output_rel_error, 1.0 / 16.0);  // output (4, 0) became (3, 0)
    EXPECT_EQ(compare_weights(W, Wq, at::Tensor()).output_rel_error, -1.0);
}

TEST(ModelQuantizer, MoreBitsLowerKlAndMetricsMatchTheWeights) {
    auto m = load_model(test::real_model_dir());
    const auto layers = m->layers().select_glob("model.layers.*");
    auto r8 = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=8,g=32,sym")),
                                    quantizer_data().calib, options());
    ASSERT_EQ(r8.layers.size(), layers.size());
    for (const auto& lr : r8.layers) {
        EXPECT_TRUE(m->is_replaced(lr.layer));
        auto direct = compare_weights(m->original_weight(lr.layer), m->weight(lr.layer), at::Tensor());
        EXPECT_DOUBLE_EQ(lr.metrics.weight_mse, direct.weight_mse);
        EXPECT_GE(lr.metrics.output_rel_error, 0.0);
        EXPECT_GT(lr.metrics.sqnr_db, 35.0);
    }
    const double kl8 = mean_kl(*m);
    m->restore_all();
    auto r3 = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=3,g=32")), quantizer_data().calib,
                                    options());
    const double kl3 = mean_kl(*m);
    m->restore_all();
    EXPECT_LT(kl8, 1e-3);
    EXPECT_GT(kl3, 4 * kl8);
    EXPECT_DOUBLE_EQ(r8.total_bits_per_weight(), 8.5);  // 8-bit codes + one fp16 scale per 32 weights
    EXPECT_GT(r8.total_bits_per_weight(), r3.total_bits_per_weight());
    EXPECT_NEAR(mean_kl(*m), 0.0, 1e-9);
}

// One definition of bits: the estimate before a run (the GUI's Method pane, the allocator) is the count of the
// run, a shared part (LiftQuant's fp16 lift matrix, QAM-W's codebook) once for every layer that uses it.
TEST(ModelQuantizer, PlanEstimateCountsSharedPartsOnceLikeTheRun) {
    auto m = load_model(test::real_model_dir());
    const auto layers = m->layers().select_glob("model.layers.*");
    for (const char* spec : {"liftquant:D=20,d=8,had", "qamw:k=8", "rtn:b=3,g=32"}) {
        const auto plan = uniform_plan(layers, CodecSpec::parse(spec));
        const PlanBits est = estimate_plan_bits(m->layers(), plan);
        const auto r = quantize_model_layers(*m, plan, quantizer_data().calib, options());
        m->restore_all();
        int64_t weights = 0;
        for (std::size_t l : layers) weights += m->layers().at(l).params();
        EXPECT_EQ(est.weights, weights);
        EXPECT_NEAR(est.bits_per_weight(), r.total_bits_per_weight(), 1e-12) << spec;
        // Counted per layer instead, the shared part would be paid 14 times.
        const int64_t shared = make_codec(spec)->estimate_bits(128, 128).shared_bits;
        double per_layer = 0;
        for (const auto& l : r.layers) per_layer += l.metrics.total_bits_per_weight * double(m->layers().at(l.layer).params());
        EXPECT_NEAR(per_layer - est.bits, double(shared) * (layers.size() - 1), 1e-6) << spec;
    }
}

TEST(ModelQuantizer, SmallStatsBudgetGivesTheSameResultInSeveralPasses) {
    auto a = load_model(test::real_model_dir());
    auto b = load_model(test::real_model_dir());
    const auto layers = a->layers().select_glob("model.layers.0.*");
    auto opt = options();
    auto ra = quantize_model_layers(*a, uniform_plan(layers, CodecSpec::parse("rtn:b=4,g=32")), quantizer_data().calib,
                                    opt);
    opt.max_stats_bytes = 1;  // one layer per capture pass
    auto rb = quantize_model_layers(*b, uniform_plan(layers, CodecSpec::parse("rtn:b=4,g=32")), quantizer_data().calib,
                                    opt);
    for (std::size_t i = 0; i < layers.size(); ++i) EXPECT_TRUE(torch::equal(a->weight(layers[i]), b->weight(layers[i])));
    EXPECT_EQ(ra.layers.size(), rb.layers.size());
}

TEST(ModelQuantizer, MisuseAndCancellation) {
    auto m = load_model(test::real_model_dir());
    const auto l = m->layers().select_glob("model.layers.0.mlp.up_proj");
    // The same layer planned twice.
    EXPECT_THROW(quantize_model_layers(*m, {{l[0], CodecSpec::parse("rtn:b=4")}, {l[0], CodecSpec::parse("rtn:b=3")}},
                                       quantizer_data().calib, options()),
                 Error);
    // GPTQ needs calibration text.
    EXPECT_THROW(quantize_model_layers(*m, uniform_plan(l, CodecSpec::parse("gptq:b=4")), {}, options()), Error);
    // A setting that cannot apply names every layer it refuses before any layer is touched: LC-QAT codes 4
    // weights at a time, so a tiny model's 330-wide down_proj inputs (one per block) are refused.
    test::ScratchDir dir;
    const auto tiny = load_model(test::write_tiny_llama(dir.path().string(), "tiny", 160, 330));
    const auto all = tiny->layers().select_glob("model.layers.*");
    const auto before = tiny->weight(all[0]).clone();
    const std::string refused = test::error_of(
        [&] { quantize_model_layers(*tiny, uniform_plan(all, CodecSpec::parse("lcqat:hessian=0")), {}, options()); });
    EXPECT_NE(refused.find("2 of 14 layers cannot take their setting: model.layers.0.mlp.down_proj (lcqat:"),
              std::string::npos) << refused;
    EXPECT_NE(refused.find("cols 330 is not a multiple of 4"), std::string::npos) << refused;
    EXPECT_NE(refused.find("; model.layers.1.mlp.down_proj ("), std::string::npos) << refused;
    EXPECT_TRUE(torch::equal(tiny->weight(all[0]), before));
    // RTN needs none, and still reports weight metrics.
    auto r = quantize_model_layers(*m, uniform_plan(l, CodecSpec::parse("rtn:b=4,g=32")), {}, options());
    EXPECT_EQ(r.layers[0].metrics.output_rel_error, -1.0);
    EXPECT_GT(r.layers[0].metrics.weight_mse, 0.0);
    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(quantize_model_layers(*m, uniform_plan(l, CodecSpec::parse("rtn:b=4")), quantizer_data().calib,
                                       options(), &cancel),
                 Cancelled);
}
