// The best measured uniform setting (core/jobs/uniform_prediction.h) on hand-made measurements whose
// predicted KL and bits are computed here independently: the cheapest-KL setting within the bits wins, a
// setting not measured on every layer is never chosen, and measurements of other layers predict nothing.
#include <gtest/gtest.h>

#include <cmath>

#include "jobs/model_quantizer.h"
#include "jobs/uniform_prediction.h"
#include "quant/codec_spec.h"

namespace quench {
namespace {

LayerRegistry three_layers() {
    return LayerRegistry({{"model.layers.0.self_attn.q_proj", 0, LayerKind::Q, 128, 128},
                          {"model.layers.0.mlp.up_proj", 0, LayerKind::Up, 256, 128},
                          {"model.layers.0.mlp.down_proj", 0, LayerKind::Down, 128, 256}});
}

std::string canonical(const std::string& spec) { return CodecSpec::parse(spec).to_string(); }

// KL per layer and setting: layer i at b bits costs (i + 1) * 4^-b, measured (has_kl) on every point.
Measurements measured(const LayerRegistry& reg, const std::vector<std::string>& specs, bool skip_last_on_one = false) {
    Measurements m;
    for (std::size_t i = 0; i < reg.size(); ++i) {
        const LayerInfo& info = reg.at(i);
        SensitivityLayer l;
        l.name = info.name;
        l.kind = layer_kind_name(info.kind);
        l.block = info.block;
        l.out_features = info.out_features;
        l.in_features = info.in_features;
        m.add_layer(l);
        for (std::size_t s = 0; s < specs.size(); ++s) {
            if (skip_last_on_one && i == 1 && s + 1 == specs.size()) continue;
            SensitivityPoint p;
            p.layer = info.name;
            p.spec = canonical(specs[s]);
            const double b = CodecSpec::parse(specs[s]).get_int("b");
            p.has_kl = true;
            p.kl = (static_cast<double>(i) + 1) * std::pow(4.0, -b);
            p.bits_per_weight = b + 0.5;
            m.set(p);
        }
    }
    return m;
}

double plan_bits(const LayerRegistry& reg, const std::vector<std::size_t>& layers, const std::string& spec) {
    return estimate_plan_bits(reg, uniform_plan(layers, CodecSpec::parse(spec))).bits_per_weight();
}

TEST(UniformPrediction, LeastPredictedKlWithinTheBits) {
    const LayerRegistry reg = three_layers();
    const std::vector<std::size_t> all = {0, 1, 2};
    const Measurements m = measured(reg, {"rtn:b=2,g=32", "rtn:b=3,g=32", "rtn:b=4,g=32"});
    const double bits3 = plan_bits(reg, all, "rtn:b=3,g=32");
    // At exactly 3-bit's cost, 3-bit wins: 4-bit costs more bits, 2-bit predicts more KL.
    const auto best = best_measured_uniform(m, reg, all, bits3);
    ASSERT_TRUE(best.has_value());
    EXPECT_EQ(best->spec, canonical("rtn:b=3,g=32"));
    EXPECT_DOUBLE_EQ(best->bits_per_weight, bits3);
    EXPECT_NEAR(best->predicted_kl, (1 + 2 + 3) * std::pow(4.0, -3), 1e-15);
    // With room for 4 bits, 4 bits; below 2-bit's cost, nothing.
    EXPECT_EQ(best_measured_uniform(m, reg, all, 100)->spec, canonical("rtn:b=4,g=32"));
    EXPECT_FALSE(best_measured_uniform(m, reg, all, plan_bits(reg, all, "rtn:b=2,g=32") * 0.99).has_value());
}

TEST(UniformPrediction, OnlySettingsMeasuredOnEveryLayerAndOnlyForTheMeasuredLayers) {
    const LayerRegistry reg = three_layers();
    const std::vector<std::size_t> all = {0, 1, 2};
    // 4-bit is missing on one layer: at any bits the best uniform is 3-bit.
    const Measurements m = measured(reg, {"rtn:b=2,g=32", "rtn:b=3,g=32", "rtn:b=4,g=32"}, true);
    EXPECT_EQ(best_measured_uniform(m, reg, all, 100)->spec, canonical("rtn:b=3,g=32"));
    // The measurements cover three layers; a question about two of them (or none) has no answer.
    EXPECT_FALSE(best_measured_uniform(m, reg, {0, 1}, 100).has_value());
    EXPECT_FALSE(best_measured_uniform(m, reg, {}, 100).has_value());
    EXPECT_FALSE(best_measured_uniform(Measurements(), reg, all, 100).has_value());
}

}  // namespace
}  // namespace quench
