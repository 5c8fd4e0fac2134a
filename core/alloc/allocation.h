#pragma once
// The answer of a bit-allocation solver: one setting per layer and the totals, with what the solver can prove
// about it (a lower bound on the optimum, hence the largest possible gap).
#include <cstdint>
#include <string>
#include <vector>

#include "alloc/allocation_spec.h"

namespace quench {

struct LayerChoice {
    std::string name;
    std::string spec;      // chosen candidate's spec; "fp16"/"fp32" for an excluded layer
    int candidate = -1;    // index in the layer's candidates; -1 for an excluded layer
    int64_t weights = 0;
    int64_t bits = 0;      // total bits of this layer with that setting, without the shared parts it uses
    double bits_per_weight = 0;
    double cost = 0;       // the candidate's predicted cost; 0 for an excluded layer
    bool excluded = false;
    bool pinned = false;
    int tied_group = -1;   // index of its tied group (after merging), -1 when not tied
};

struct Allocation {
    std::string solver;           // "lagrangian" or "exact"
    bool proven_optimal = false;  // no allocation within the budget has a lower predicted cost
    Budget budget;
    int64_t budget_bits = 0;      // the budget in whole bits: total_bits never exceeds it
    int64_t total_bits = 0;       // the layers' bits plus shared_bits
    int64_t shared_bits = 0;      // parts stored once per model (AllocCandidate::shared_key), each paid once
    std::vector<std::string> shared_keys;  // the shared parts the allocation uses, sorted
    int64_t total_weights = 0;
    double bits_per_weight = 0;   // total_bits / total_weights
    double bytes = 0;             // total_bits / 8
    double total_cost = 0;        // sum of the layers' predicted costs
    double lower_bound = 0;       // no allocation within the budget costs less (the LP relaxation's value)
    double gap = 0;               // total_cost - lower_bound, >= 0; 0 when proven optimal
    double lambda = 0;            // the Lagrange multiplier (cost per bit) at the budget
    int64_t resolution_bits = 0;  // exact solver: the budget step of its knapsack DP; 0 for lagrangian
    std::vector<LayerChoice> layers;  // in the problem's layer order
};

}  // namespace quench
