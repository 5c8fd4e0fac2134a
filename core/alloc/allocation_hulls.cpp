// The budget-independent part of both solvers: each choice unit's lower convex hull, every hull step sorted by
// slope with prefix sums (the Lagrangian solver's whole precomputation), and the exact solver's budget step.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "alloc/allocation_problem.h"

namespace quench {

void AllocationProblem::build_hulls() {
    // Lower convex hull of each item's Pareto points (monotone chain). Collinear points stay on the hull:
    // each is a finer step for the greedy fill at no loss of optimality.
    for (auto& it : items_) {
        it.first_hull = static_cast<int>(hull_.size());
        const Option* o = &options_list_[it.first_option];
        for (int j = 0; j < it.n_options; ++j) {
            while (static_cast<int>(hull_.size()) - it.first_hull >= 2) {
                const Option& a = o[hull_[hull_.size() - 2]];
                const Option& b = o[hull_.back()];
                // b lies strictly above the line from a to o[j]: not on the lower hull.
                const long double lhs = static_cast<long double>(b.cost - a.cost) * static_cast<long double>(o[j].bits - a.bits);
                const long double rhs = static_cast<long double>(o[j].cost - a.cost) * static_cast<long double>(b.bits - a.bits);
                if (lhs > rhs) hull_.pop_back();
                else break;
            }
            hull_.push_back(j);
        }
        it.n_hull = static_cast<int>(hull_.size()) - it.first_hull;
    }

    segments_.clear();
    min_bits_ = max_useful_bits_ = 0;
    min_cost_total_ = 0;
    for (int i = 0; i < static_cast<int>(items_.size()); ++i) {
        const Item& it = items_[i];
        const Option* o = &options_list_[it.first_option];
        const int* h = &hull_[it.first_hull];
        min_bits_ += o[0].bits;
        min_cost_total_ += o[0].cost;
        max_useful_bits_ += o[it.n_options - 1].bits;
        double prev_slope = INFINITY;
        for (int k = 1; k < it.n_hull; ++k) {
            Segment s;
            s.item = i, s.to = k;
            s.bits = o[h[k]].bits - o[h[k - 1]].bits;
            s.gain = o[h[k - 1]].cost - o[h[k]].cost;
            // Rounding must not reorder one item's steps: the greedy relies on taking them in hull order.
            s.slope = std::min(prev_slope, s.gain / static_cast<double>(s.bits));
            prev_slope = s.slope;
            segments_.push_back(s);
        }
    }
    std::sort(segments_.begin(), segments_.end(), [](const Segment& a, const Segment& b) {
        if (a.slope != b.slope) return a.slope > b.slope;
        if (a.item != b.item) return a.item < b.item;
        return a.to < b.to;
    });
    const size_t S = segments_.size();
    seg_prefix_bits_.assign(S + 1, 0);
    seg_prefix_gain_.assign(S + 1, 0);
    seg_suffix_min_bits_.assign(S + 1, INT64_MAX);
    for (size_t k = 0; k < S; ++k) {
        seg_prefix_bits_[k + 1] = seg_prefix_bits_[k] + segments_[k].bits;
        seg_prefix_gain_[k + 1] = seg_prefix_gain_[k] + segments_[k].gain;
    }
    for (size_t k = S; k-- > 0;) seg_suffix_min_bits_[k] = std::min(seg_suffix_min_bits_[k + 1], segments_[k].bits);
}

void AllocationProblem::build_steps() {
    // The exact DP counts bits above each item's least in steps of unit_bits_: the common divisor of every
    // such difference when that gives at most exact_steps steps over the whole range (no loss at all), else a
    // multiple of it that does. The step is fixed per problem, which keeps the exact solver monotone in the
    // budget.
    int64_t g = 0, span = 0;
    for (const auto& it : items_) {
        const Option* o = &options_list_[it.first_option];
        for (int j = 1; j < it.n_options; ++j) g = std::gcd(g, o[j].bits - it.min_bits);
        span += o[it.n_options - 1].bits - it.min_bits;
    }
    if (g == 0) g = 1;
    unit_bits_ = g;
    if (span / g > options_.exact_steps) {
        const int64_t k = (span / g + options_.exact_steps - 1) / options_.exact_steps;
        unit_bits_ = g * k;
    }
    for (const auto& it : items_) {
        for (int j = 0; j < it.n_options; ++j) {
            Option& o = options_list_[it.first_option + j];
            const int64_t d = o.bits - it.min_bits;
            o.steps = (d + unit_bits_ - 1) / unit_bits_;
            o.exact = d % unit_bits_ == 0;
        }
    }
}

}  // namespace quench
