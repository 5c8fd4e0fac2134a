#pragma once
// The uniform setting an allocated or hand-picked mix should be compared with: among the measured sensitivity
// candidates, one setting on every layer, the one with the least predicted KL at no more bits. The results
// summary shows it under every evaluation, so a user sees whether a mix beat the best plain setting.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "analysis/measurements.h"
#include "model/layer_registry.h"

namespace quench {

struct UniformChoice {
    std::string spec;
    double bits_per_weight = 0;  // as quantize counts them (estimate_plan_bits) over the layers
    double predicted_kl = 0;     // sum of the layers' costs, the allocation's cost model (CostSource::Auto)
};

// The best uniform setting of `layers` (registry indices) at no more than max_bpw bits per weight, or none
// when the measurements do not cover exactly those layers (a prediction for other layers would compare
// nothing), when no candidate was measured on all of them, or when every one costs more bits.
std::optional<UniformChoice> best_measured_uniform(const Measurements& m, const LayerRegistry& registry,
                                                   const std::vector<std::size_t>& layers, double max_bpw);

}  // namespace quench
