#include "jobs/uniform_prediction.h"

#include <map>
#include <set>

#include "common/error.h"
#include "jobs/model_quantizer.h"
#include "jobs/sensitivity.h"
#include "quant/codec_spec.h"

namespace quench {

std::optional<UniformChoice> best_measured_uniform(const Measurements& m, const LayerRegistry& registry,
                                                   const std::vector<std::size_t>& layers, double max_bpw) {
    if (m.empty() || layers.empty()) return std::nullopt;
    AllocationSpec spec;
    try {
        spec = to_allocation_spec(m, CostSource::Auto);  // costs as the allocation predicts KL
    } catch (const Error&) {
        return std::nullopt;  // a measured layer without any usable candidate: no uniform setting covers it
    }
    std::set<std::size_t> measured;
    for (const auto& l : spec.layers)
        if (auto i = registry.index_of(l.name)) measured.insert(*i);
    if (measured != std::set<std::size_t>(layers.begin(), layers.end())) return std::nullopt;
    // A uniform setting is a spec every layer has a cost for; its predicted KL is the sum of those costs.
    std::map<std::string, std::pair<double, std::size_t>> sums;  // spec -> (cost, layers having it)
    for (const auto& l : spec.layers)
        for (const auto& c : l.candidates) {
            sums[c.spec].first += c.cost;
            ++sums[c.spec].second;
        }
    std::optional<UniformChoice> best;
    for (const auto& [text, sum] : sums) {
        if (sum.second != spec.layers.size()) continue;
        double bpw = 0;
        try {
            bpw = estimate_plan_bits(registry, uniform_plan(layers, CodecSpec::parse(text))).bits_per_weight();
        } catch (const Error&) {
            continue;  // a shape the codec refuses: not a setting these layers can take
        }
        if (bpw > max_bpw * (1 + 1e-12)) continue;  // the same setting as the run costs the same bits
        if (!best || sum.first < best->predicted_kl) best = UniformChoice{text, bpw, sum.first};
    }
    return best;
}

}  // namespace quench
