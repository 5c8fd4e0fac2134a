// The Lagrangian (convex-hull) solver. Every item's hull steps, from all items, are sorted once by slope
// (cost saved per bit, descending; see allocation_problem.cpp). For a budget the solver takes the longest
// prefix of that list that fits (one binary search over prefix sums): that is the minimiser of
// cost + lambda * bits at lambda = the slope of the first step left out, hence optimal for its own bit count.
// The leftover budget is then filled greedily with later steps, in slope order, of items not yet blocked by a
// step that did not fit. The LP relaxation (the prefix plus the fitting fraction of the first step left out)
// bounds the optimum from below, so the reported gap is a proof, not an estimate.
#include <algorithm>

#include "alloc/allocation_problem.h"
#include "alloc/lagrangian_point.h"

namespace quench {

AllocationProblem::LagrangianPoint AllocationProblem::lagrangian_point(int64_t budget, bool fill) const {
    const int64_t room = budget - min_bits_;  // >= 0: checked by the callers
    const size_t S = segments_.size();
    const size_t k = static_cast<size_t>(std::upper_bound(seg_prefix_bits_.begin(), seg_prefix_bits_.end(), room) -
                                         seg_prefix_bits_.begin()) - 1;
    std::vector<int> pos(items_.size(), 0);  // hull position per item
    for (size_t t = 0; t < k; ++t) pos[segments_[t].item] = segments_[t].to;
    int64_t left = room - seg_prefix_bits_[k];

    LagrangianPoint p;
    p.lambda = k < S ? segments_[k].slope : 0.0;
    p.lower_bound = min_cost_total_ - seg_prefix_gain_[k] - (k < S ? p.lambda * static_cast<double>(left) : 0.0);
    p.proven = k == S || left == 0;

    // Greedy fill. Taking a step only when it fits, in slope order, keeps the cost monotone in the budget:
    // a larger budget diverges from a smaller one only by taking a step that the smaller could not afford,
    // which saves more than all the smaller budget's later (flatter) steps together.
    if (fill && !p.proven) {
        std::vector<char> blocked(items_.size(), 0);
        blocked[segments_[k].item] = 1;
        bool flat = true;  // every step taken has slope lambda: the fill stays on the LP optimum
        for (size_t t = k + 1; t < S && left >= seg_suffix_min_bits_[t]; ++t) {
            const Segment& s = segments_[t];
            if (blocked[s.item]) continue;
            if (s.bits <= left) {
                pos[s.item] = s.to;
                left -= s.bits;
                flat = flat && s.slope == p.lambda;
            } else {
                blocked[s.item] = 1;  // its later steps must wait for this one
            }
        }
        p.proven = left == 0 && flat;
    }

    p.option_of_item.resize(items_.size());
    for (size_t i = 0; i < items_.size(); ++i) {
        const int opt = hull_[items_[i].first_hull + pos[i]];
        p.option_of_item[i] = opt;
        p.cost += options_list_[items_[i].first_option + opt].cost;
    }
    p.bits = budget - left;
    if (p.proven) p.lower_bound = p.cost;
    return p;
}

Allocation AllocationProblem::solve_lagrangian(const Budget& budget, const LagrangianOptions& options) const {
    if (!variants_.empty())
        return solve_shared(budget, [&](const AllocationProblem& p, const Budget& b, int64_t bits) {
            return p.lagrangian_bits(b, bits, options);
        });
    return lagrangian_bits(budget, budget_bits(budget), options);
}

Allocation AllocationProblem::lagrangian_bits(const Budget& budget, int64_t bits, const LagrangianOptions& options) const {
    if (bits < min_bits_) throw_infeasible(budget, bits);
    LagrangianPoint p = lagrangian_point(bits, options.fill);
    // Off a hull point the greedy fill can end above a setting no hull holds: a uniform one, say. (Without the
    // fill the caller asked for the hull point itself.)
    if (options.fill && !p.proven) uniform_floor(p.option_of_item, bits);
    Allocation a = assemble(budget, bits, p.option_of_item, "lagrangian");
    a.lambda = p.lambda;
    a.proven_optimal = p.proven;
    a.lower_bound = p.proven ? a.total_cost : std::min(p.lower_bound, a.total_cost);
    a.gap = a.total_cost - a.lower_bound;
    return a;
}

}  // namespace quench
