// Sensitivity measurements on the real model: KL falls as bits rise, reuse measures only missing pairs
// (counted quantize calls), unavailable settings are recorded, proxy correlation, JSON round trip, cancellation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "jobs/sensitivity.h"
#include "analysis/layer_capture.h"
#include "analysis/layer_metrics.h"
#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "jobs/model_quantizer.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/codec_spec.h"
#include "support/errors.h"
#include "support/test_paths.h"
#include "support/tiny_model.h"

using namespace quench;

namespace {

struct SensitivityFixture {
    std::unique_ptr<LlamaModel> model = load_model(test::real_model_dir());
    std::unique_ptr<Tokenizer> tok = load_tokenizer(test::real_model_dir());
    std::vector<int32_t> calib =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.train.txt"), true, 2048);
    std::vector<int32_t> kl = std::vector<int32_t>(calib.begin(), calib.begin() + 512);
    SensitivityOptions options() const {
        SensitivityOptions o;
        o.ctx = 128;
        o.sample_rows = 128;
        return o;
    }
    SensitivityStats measure(const std::string& glob, const std::string& cands, Measurements& m,
                             SensitivityOptions o, ProgressSink* p = nullptr) {
        return measure_sensitivity(*model, model->layers().select_glob(glob), parse_candidate_list(cands), calib, kl,
                                   tok->bos_id(), o, m, p);
    }
    bool any_replaced() const {
        for (std::size_t i = 0; i < model->layers().size(); ++i)
            if (model->is_replaced(i)) return true;
        return false;
    }
};

SensitivityFixture& sensitivity_fx() {
    static SensitivityFixture f;
    return f;
}

const char* kDown0 = "model.layers.0.mlp.down_proj";

// Cancels once the n-th (layer, candidate) pair has started.
class CancelAtPair : public ProgressSink {
public:
    explicit CancelAtPair(int n) : n_(n) {}
    void report(double, const std::string& stage) override {
        if (stage.rfind("sensitivity model.", 0) == 0) ++seen_;
    }
    bool cancelled() const override { return seen_ >= n_; }

private:
    int n_, seen_ = 0;
};

}  // namespace

TEST(Spearman, KnownValues) {
    EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
    EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
    // ranks a = 1,2,3 ; b = 1.5,1.5,3 (tie averaged): r = 0.866...
    EXPECT_NEAR(spearman({1, 2, 3}, {5, 5, 7}), std::sqrt(3.0) / 2.0, 1e-12);
    EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3})));
}

TEST(Sensitivity, CandidateListParsesSemicolonsCanonically) {
    const auto c = parse_candidate_list(" rtn:b=2,g=64 ; rtn:g=64,b=2;rtn:b=3");
    ASSERT_EQ(c.size(), 2u);  // the duplicate (other order) collapses
    EXPECT_EQ(c[0], CodecSpec::parse("rtn:b=2,g=64").to_string());
    EXPECT_NE(test::error_of([] { parse_candidate_list("rtn:b=2;rtn:b=0"); }).find("rtn:b=0"), std::string::npos);
    EXPECT_FALSE(test::error_of([] { parse_candidate_list(" ; "); }).empty());
}

TEST(Sensitivity, KlIsNonNegativeAndFallsAsBitsRise) {
    auto& f = sensitivity_fx();
    Measurements m;
    const auto st = f.measure(kDown0, "rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64", m, f.options());
    EXPECT_EQ(st.quantize_calls, 3);
    EXPECT_EQ(st.kl_evals, 3);
    EXPECT_FALSE(f.any_replaced());
    const auto c = parse_candidate_list("rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64");
    std::vector<const SensitivityPoint*> p;
    for (const auto& s : c) p.push_back(m.find(kDown0, s));
    for (const auto* q : p) {
        ASSERT_NE(q, nullptr);
        ASSERT_TRUE(q->available);
        ASSERT_TRUE(q->has_kl);
        EXPECT_GE(q->kl, 0.0);
        EXPECT_GT(q->output_rel_error, 0.0);
    }
    // Asymmetric rtn, g=64: b code bits per weight plus an fp16 scale and a b-bit zero point per 64 weights.
    for (int b = 2; b <= 4; ++b) {
        EXPECT_DOUBLE_EQ(p[b - 2]->code_bits_per_weight, double(b));
        EXPECT_DOUBLE_EQ(p[b - 2]->bits_per_weight, b + (16.0 + b) / 64.0);
    }
    EXPECT_GT(p[0]->kl, p[1]->kl);
    EXPECT_GT(p[1]->kl, p[2]->kl);
    EXPECT_GT(p[0]->output_rel_error, p[1]->output_rel_error);
    EXPECT_GT(p[1]->output_rel_error, p[2]->output_rel_error);
}

// One calibration walk and one KL probe move down the model (core/analysis/block_walk.h, kl_probe.h); each
// point must still be what the plain recipe gives: capture the layer's inputs with a whole forward, quantize,
// replace, evaluate KL against the unchanged model. Bit for bit, in blocks 0 and 1 and at lm_head, with and
// without a Hessian, and with every hidden state spilled.
TEST(Sensitivity, EachPointIsWhatCaptureQuantizeAndEvaluateGive) {
    auto& f = sensitivity_fx();
    LlamaModel& model = *f.model;
    const std::vector<std::string> names = {"model.layers.0.self_attn.v_proj", "model.layers.1.mlp.down_proj", "lm_head"};
    const auto cands = parse_candidate_list("rtn:b=3,g=64;gptq:b=3,g=64");
    for (const int64_t cap : {HiddenStates::kDefaultMemoryCap, int64_t(0)}) {
        SCOPED_TRACE("memory cap " + std::to_string(cap));
        Measurements m;
        SensitivityOptions o = f.options();
        o.hidden_memory_cap = cap;
        std::vector<std::size_t> layers;
        for (const auto& n : names) layers.push_back(model.layers().select_glob(n).at(0));
        const auto st = measure_sensitivity(model, layers, cands, f.calib, f.kl, f.tok->bos_id(), o, m);
        EXPECT_EQ(st.kl_evals, 6);
        EXPECT_EQ(st.capture_passes, 3);
        CaptureOptions co;
        co.ctx = o.ctx;
        co.sample_rows = o.sample_rows;
        const auto captured = capture_layer_inputs(model, layers, f.calib, co);
        EvalOptions eo;
        eo.ctx = o.ctx;
        eo.batch = o.kl_batch;
        for (std::size_t l : layers)
            for (const auto& c : cands) {
                const std::string& name = model.layers().at(l).name;
                SCOPED_TRACE(name + " " + c);
                CalibStats calib;
                calib.hessian = captured.at(l).hessian();
                calib.act_scale = captured.at(l).abs_mean;
                const auto codec = make_codec(c);
                QuantizeContext ctx{&calib, layer_seed(o.seed, name), nullptr};
                const at::Tensor wq = codec->dequantize(codec->quantize(model.original_weight(l), ctx));
                const SensitivityPoint* p = m.find(name, c);
                ASSERT_NE(p, nullptr);
                EXPECT_EQ(p->output_rel_error,
                          compare_weights(model.original_weight(l), wq, captured.at(l).sample).output_rel_error);
                model.replace_weight(l, wq);
                const KlReport kl = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, f.kl, eo, f.tok->bos_id());
                model.restore_weight(l);
                EXPECT_EQ(p->kl, kl.kl_mean);
                EXPECT_EQ(p->kl_stderr, kl.kl_stderr);
            }
    }
}

TEST(Sensitivity, ExtendingMeasuresOnlyMissingPairs) {
    auto& f = sensitivity_fx();
    Measurements m;
    const std::string glob = "model.layers.1.self_attn.*";  // q, k, v, o
    const auto a = f.measure(glob, "rtn:b=2,g=64;rtn:b=4,g=64", m, f.options());
    EXPECT_EQ(a.quantize_calls, 8);
    EXPECT_EQ(a.kl_evals, 8);
    EXPECT_EQ(a.reused, 0);
    EXPECT_EQ(m.size(), 8u);
    const double kl_before = m.find("model.layers.1.self_attn.q_proj", parse_candidate_list("rtn:b=2,g=64")[0])->kl;
    const auto b = f.measure(glob, "rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64", m, f.options());
    EXPECT_EQ(b.quantize_calls, 4);  // only b=3 on the four layers
    EXPECT_EQ(b.kl_evals, 4);
    EXPECT_EQ(b.reused, 8);
    EXPECT_EQ(m.size(), 12u);
    EXPECT_EQ(m.find("model.layers.1.self_attn.q_proj", parse_candidate_list("rtn:b=2,g=64")[0])->kl, kl_before);
    const auto c = f.measure(glob, "rtn:b=3,g=64", m, f.options());
    EXPECT_EQ(c.quantize_calls, 0);
    EXPECT_EQ(c.reused, 4);
    // Other tokens: refused rather than mixed.
    const auto other = std::vector<int32_t>(f.calib.begin() + 100, f.calib.begin() + 612);
    const std::string e = test::error_of([&] {
        measure_sensitivity(*f.model, f.model->layers().select_glob(glob), {"rtn:b=3,g=64"}, f.calib, other,
                            f.tok->bos_id(), f.options(), m);
    });
    EXPECT_NE(e.find("kl_tokens"), std::string::npos) << e;
}

TEST(Sensitivity, UnavailableCandidatesAreRecordedNotFatal) {
    auto& f = sensitivity_fx();
    // Every codec takes every width of the real model; LC-QAT codes 4 weights at a time, so a 330-wide
    // down_proj input (a tiny model's) is a width it cannot take, while its 160-wide q_proj is fine.
    test::ScratchDir dir;
    const auto tiny = load_model(test::write_tiny_llama(dir.path().string(), "tiny", 160, 330));
    const auto measure = [&](const std::string& glob, const std::string& cands, Measurements& m) {
        return measure_sensitivity(*tiny, tiny->layers().select_glob(glob), parse_candidate_list(cands), f.calib, f.kl,
                                   f.tok->bos_id(), f.options(), m);
    };
    Measurements m;
    const auto st = measure("model.layers.0.self_attn.q_proj,model.layers.0.mlp.down_proj", "rtn:b=3,g=64;lcqat:hessian=0", m);
    const std::string lc = parse_candidate_list("lcqat:hessian=0")[0];
    const auto* bad = m.find("model.layers.0.mlp.down_proj", lc);
    ASSERT_NE(bad, nullptr);
    EXPECT_FALSE(bad->available);
    EXPECT_NE(bad->error.find("cols 330 is not a multiple of 4"), std::string::npos) << bad->error;
    EXPECT_EQ(st.unavailable, 1);
    const auto* good = m.find("model.layers.0.self_attn.q_proj", lc);
    ASSERT_NE(good, nullptr);
    EXPECT_TRUE(good->available);
    const auto* rtn = m.find("model.layers.0.mlp.down_proj", parse_candidate_list("rtn:b=3,g=64")[0]);
    ASSERT_NE(rtn, nullptr);
    EXPECT_TRUE(rtn->available);
    // The allocation spec leaves unavailable points out.
    const AllocationSpec spec = to_allocation_spec(m, CostSource::Kl);
    ASSERT_EQ(spec.layers.size(), 2u);
    EXPECT_EQ(spec.layers[1].name, "model.layers.0.mlp.down_proj");
    EXPECT_EQ(spec.layers[1].candidates.size(), 1u);
    EXPECT_EQ(spec.layers[1].weights, 160 * 330);
    EXPECT_EQ(spec.layers[0].candidates.size(), 2u);
    // A layer whose every candidate is unavailable is an error naming it.
    Measurements only_bad;
    measure("model.layers.0.mlp.down_proj", "lcqat:hessian=0", only_bad);
    const std::string e = test::error_of([&] { to_allocation_spec(only_bad, CostSource::Auto); });
    EXPECT_NE(e.find("'model.layers.0.mlp.down_proj'"), std::string::npos) << e;
}

TEST(Sensitivity, EveryStoredPairIsReportedAsItIsStored) {
    // The GUI's heatmap fills in from on_point while the job runs: every pair stored, measured or not,
    // reaches it once, with the values the measurements end up holding.
    auto& f = sensitivity_fx();
    test::ScratchDir dir;
    const auto tiny = load_model(test::write_tiny_llama(dir.path().string(), "tiny", 160, 330));
    std::vector<SensitivityPoint> seen;
    std::vector<std::string> seen_layers;
    SensitivityOptions o = f.options();
    o.on_point = [&](const SensitivityLayer& l, const SensitivityPoint& p) {
        seen_layers.push_back(l.name);
        seen.push_back(p);
    };
    Measurements m;
    const auto st = measure_sensitivity(*tiny, tiny->layers().select_glob("model.layers.0.mlp.*"),
                                        parse_candidate_list("rtn:b=3,g=64;lcqat:hessian=0"), f.calib, f.kl,
                                        f.tok->bos_id(), o, m);
    ASSERT_EQ(seen.size(), m.size());
    EXPECT_EQ(int64_t(seen.size()), 6);  // gate, up, down x 2 settings
    EXPECT_EQ(st.unavailable, 1);        // lcqat on the 330-wide down_proj
    for (std::size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen_layers[i], seen[i].layer);
        const SensitivityPoint* stored = m.find(seen[i].layer, seen[i].spec);
        ASSERT_NE(stored, nullptr);
        EXPECT_EQ(stored->available, seen[i].available);
        EXPECT_EQ(stored->has_kl, seen[i].has_kl);
        EXPECT_EQ(stored->kl, seen[i].kl);
        EXPECT_EQ(stored->bits_per_weight, seen[i].bits_per_weight);
    }
}

TEST(Sensitivity, ProxyMeasuresFewKlAndReportsCorrelation) {
    auto& f = sensitivity_fx();
    Measurements m;
    auto o = f.options();
    o.proxy = true;
    const std::string cands = "rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64;rtn:b=5,g=64";
    const auto st = f.measure("model.layers.*.mlp.*", cands, m, o);  // 6 layers
    EXPECT_EQ(st.quantize_calls, 24);
    EXPECT_EQ(st.kl_evals, 12);  // median-bits (b=3) and fewest-bits (b=2) per layer
    EXPECT_EQ(m.proxy_points(), 12);
    ASSERT_TRUE(std::isfinite(m.proxy_spearman()));
    // The held-out correlation recomputed here from the stored points: each measured point's KL predicted
    // from the geometric mean of KL / output error over its layer's other measured points, then Pearson's r
    // of the ranks (the KL values are distinct, so ranks need no tie handling).
    std::vector<double> truth, pred;
    for (const auto& l : m.layers()) {
        std::vector<const SensitivityPoint*> measured;
        for (const auto* p : m.points_of(l.name))
            if (p->has_kl) measured.push_back(p);
        for (const auto* p : measured) {
            double log_sum = 0;
            for (const auto* q : measured)
                if (q != p) log_sum += std::log(q->kl / q->output_rel_error);
            truth.push_back(p->kl);
            pred.push_back(p->output_rel_error * std::exp(log_sum / double(measured.size() - 1)));
        }
    }
    ASSERT_EQ(truth.size(), 12u);
    const auto ranks = [](const std::vector<double>& v) {
        std::vector<double> r(v.size());
        for (std::size_t i = 0; i < v.size(); ++i)
            for (std::size_t j = 0; j < v.size(); ++j) r[i] += v[j] < v[i] ? 1 : 0;
        return r;
    };
    const auto rt = ranks(truth), rp = ranks(pred);
    const double mean = (double(truth.size()) - 1) / 2;
    double sab = 0, saa = 0, sbb = 0;
    for (std::size_t i = 0; i < rt.size(); ++i) {
        sab += (rt[i] - mean) * (rp[i] - mean);
        saa += (rt[i] - mean) * (rt[i] - mean);
        sbb += (rp[i] - mean) * (rp[i] - mean);
    }
    EXPECT_NEAR(m.proxy_spearman(), sab / std::sqrt(saa * sbb), 1e-12);
    const auto c = parse_candidate_list(cands);
    for (const auto& l : m.layers()) {
        EXPECT_GT(l.proxy_factor, 0.0);
        EXPECT_TRUE(m.find(l.name, c[0])->has_kl);
        EXPECT_TRUE(m.find(l.name, c[1])->has_kl);
        EXPECT_FALSE(m.find(l.name, c[3])->has_kl);
        const auto* p = m.find(l.name, c[3]);
        EXPECT_NEAR(p->proxy_kl, p->output_rel_error * l.proxy_factor, 1e-15);
    }
    // Proxy costs for every point; measured-only costs for the measured ones.
    EXPECT_EQ(to_allocation_spec(m, CostSource::Proxy).layers[0].candidates.size(), 4u);
    EXPECT_EQ(to_allocation_spec(m, CostSource::Kl).layers[0].candidates.size(), 2u);
    EXPECT_EQ(to_allocation_spec(m, CostSource::Auto).layers[0].candidates.size(), 4u);
    // Measuring the same pairs without --proxy adds the missing KL (re-quantizing only those).
    const auto full = f.measure("model.layers.*.mlp.*", cands, m, f.options());
    EXPECT_EQ(full.kl_evals, 12);
    EXPECT_EQ(full.quantize_calls, 12);
    EXPECT_EQ(full.reused, 12);
    EXPECT_EQ(m.proxy_points(), 24);
}

TEST(Sensitivity, JsonRoundTripAndErrors) {
    auto& f = sensitivity_fx();
    Measurements m;
    f.measure("model.layers.0.self_attn.q_proj,model.layers.0.self_attn.k_proj", "rtn:b=2,g=64;rtn:b=4,g=64;liftquant:D=12,d=3",
              m, f.options());
    test::ScratchDir dir;
    m.save(dir.file("m.json"));
    const Measurements back = Measurements::load(dir.file("m.json"));
    EXPECT_EQ(back.to_json(), m.to_json());
    EXPECT_TRUE(back.settings() == m.settings());
    ASSERT_EQ(back.size(), m.size());
    const auto* a = m.find("model.layers.0.self_attn.k_proj", parse_candidate_list("rtn:b=2,g=64")[0]);
    const auto* b = back.find("model.layers.0.self_attn.k_proj", parse_candidate_list("rtn:b=2,g=64")[0]);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->kl, b->kl);  // doubles round-trip exactly
    EXPECT_EQ(a->bits_per_weight, b->bits_per_weight);
    // A loaded file is extended like the original.
    Measurements ext = back;
    EXPECT_EQ(f.measure("model.layers.0.self_attn.q_proj", "rtn:b=4,g=64", ext, f.options()).quantize_calls, 0);
    // Errors name the file and the field.
    auto j = m.to_json();
    std::size_t k = 0;  // the first available point (unavailable ones carry no kl)
    while (!j["layers"][1]["points"][k]["available"].get<bool>()) ++k;
    j["layers"][1]["points"][k]["kl"] = "x";
    std::string e = test::error_of([&] { Measurements::from_json(j, "m.json"); });
    EXPECT_EQ(e, "m.json: layers[1].points[" + std::to_string(k) + "].kl: expected a number");
    j = m.to_json();
    j["layers"][0].erase("in_features");
    e = test::error_of([&] { Measurements::from_json(j, "m.json"); });
    EXPECT_EQ(e, "m.json: layers[0].in_features: missing");
}

TEST(Sensitivity, CancellationStopsAndKeepsFinishedPairs) {
    auto& f = sensitivity_fx();
    Measurements m;
    CancelAtPair cancel(4);
    EXPECT_THROW(f.measure("model.layers.0.*", "rtn:b=2,g=64;rtn:b=4,g=64", m, f.options(), &cancel), Cancelled);
    EXPECT_FALSE(f.any_replaced());  // the pair cancelled inside its KL evaluation was restored
    const std::size_t kept = m.size();
    EXPECT_GE(kept, 3u);  // the three pairs finished before the fourth started
    EXPECT_LE(kept, 4u);
    const auto st = f.measure("model.layers.0.*", "rtn:b=2,g=64;rtn:b=4,g=64", m, f.options());
    EXPECT_EQ(st.reused, static_cast<int64_t>(kept));
    EXPECT_EQ(st.quantize_calls + st.reused, 14);
    EXPECT_EQ(m.size(), 14u);
}
