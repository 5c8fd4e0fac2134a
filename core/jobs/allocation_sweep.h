#pragma once
// Validation of bit allocations against the model itself: each allocation (one per budget) and each
// uniform setting is applied to the model, its KL and perplexity are measured on held-out text, and set
// against the KL the allocator predicted (the sum of per-layer costs). Over the sweep, the Spearman
// correlation of predicted and measured KL says how far the additive prediction can be trusted.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "alloc/allocation.h"
#include "alloc/allocation_problem.h"
#include "analysis/model_eval.h"
#include "jobs/model_quantizer.h"

namespace quench {

class LlamaModel;
class ProgressSink;

// The quantize plan of an allocation for this model: excluded layers are left out (full precision).
// Throws quench::Error naming `source` and the layer when a layer is missing or its weight count differs.
std::vector<LayerPlan> allocation_plan(const LlamaModel& model, const Allocation& a, const std::string& source);

struct SweepEntry {
    std::string label;  // "allocated 2.5 bpw" or the uniform setting's spec
    bool uniform = false;
    double budget_bits_per_weight = std::numeric_limits<double>::quiet_NaN();  // allocations only
    // Over the problem's layers, from the stored parts of the quantized tensors (shared parts counted once;
    // excluded layers at the problem's excluded_bits_per_weight).
    double bits_per_weight = 0;
    double predicted_kl = 0;  // the sum of the layers' costs in the problem
    KlReport kl;  // measured on the evaluation text against the full-precision model
};

struct AllocationSweep {
    std::vector<SweepEntry> entries;  // allocations in budget order, then the uniform settings
    double spearman = std::numeric_limits<double>::quiet_NaN();  // predicted vs measured over every entry with both
    int64_t spearman_points = 0;
};

struct SweepOptions {
    QuantizeOptions quantize;
    EvalOptions eval;
    AllocSolver solver = AllocSolver::Lagrangian;
};

// Budgets the problem cannot meet are an error naming the budget and the least feasible one; a uniform
// spec that is not a candidate of every layer of the problem is an error naming the layer. The model's weights are restored after each entry
// (also on error or cancellation).
AllocationSweep sweep_allocations(LlamaModel& model, const AllocationProblem& problem, const std::vector<double>& budgets_bpw,
                                  const std::vector<std::string>& uniform_specs, const std::vector<int32_t>& calib_tokens,
                                  const std::vector<int32_t>& eval_tokens, int32_t bos_id, const SweepOptions& options,
                                  ProgressSink* progress = nullptr);

}  // namespace quench
