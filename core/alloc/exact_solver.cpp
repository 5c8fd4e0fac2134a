// The exact solver: a multiple-choice knapsack DP over the budget in steps of resolution_bits(), run only on
// what the Lagrangian solution leaves open. Starting from the Lagrangian choice (cost UB) and the LP bound LB
// at its multiplier lambda, any choice x within the budget costs
//     cost(x) = LB + sum_i r_i(x_i) + lambda * (budget - bits(x)),   r_i(j) = c_ij + lambda b_ij - min_k(...) >= 0,
// so an option with reduced cost r > UB - LB can never be in a choice cheaper than UB. Most layers keep one
// option; the DP runs over the few that keep several. Option bits above each item's least are rounded *up*
// to whole steps and the budget *down*, so whatever the DP returns fits the budget; when every surviving
// option's bits are whole steps (the usual case: see build_steps) nothing is lost and the result is proven
// optimal.
#include <algorithm>
#include <cmath>
#include <limits>

#include "alloc/allocation_problem.h"
#include "alloc/allocation_text.h"
#include "alloc/lagrangian_point.h"

namespace quench {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct FreeItem {
    int item = 0;
    std::vector<int> options;   // surviving options (indices within the item)
    std::vector<int64_t> over;  // their bits above the item's least
    std::vector<int64_t> steps;
    std::vector<double> costs;
};

// "At most b steps" DP: f[b] = least cost of the items so far using at most b steps; the choice table keeps
// each item's argmin per b for the walk back. Returns the least cost and the picks, or +inf when none fits.
template <class Choice>
double knapsack(const std::vector<FreeItem>& items, int64_t capacity, std::vector<int>& pick) {
    const size_t W = static_cast<size_t>(capacity) + 1;
    std::vector<double> f(W, 0.0), g(W);
    std::vector<Choice> choice(items.size() * W);
    for (size_t i = 0; i < items.size(); ++i) {
        std::fill(g.begin(), g.end(), kInf);
        Choice* ch = choice.data() + i * W;
        const double* fp = f.data();
        double* gp = g.data();
        for (size_t j = 0; j < items[i].options.size(); ++j) {
            const size_t d = static_cast<size_t>(items[i].steps[j]);
            const double c = items[i].costs[j];
            for (size_t b = d; b < W; ++b) {
                const double v = fp[b - d] + c;
                if (v < gp[b]) gp[b] = v, ch[b] = static_cast<Choice>(j);
            }
        }
        f.swap(g);
    }
    if (!(f[W - 1] < kInf)) return kInf;
    pick.assign(items.size(), 0);
    size_t b = W - 1;
    for (size_t i = items.size(); i-- > 0;) {
        pick[i] = choice[i * W + b];
        b -= static_cast<size_t>(items[i].steps[pick[i]]);
    }
    return f[W - 1];
}

}  // namespace

Allocation AllocationProblem::solve_exact(const Budget& budget, const ExactOptions& options) const {
    if (options.max_dp_cells < 1) alloc_text::fail("max_dp_cells " + std::to_string(options.max_dp_cells) + " is below 1");
    if (!variants_.empty())
        return solve_shared(budget, [&](const AllocationProblem& p, const Budget& b, int64_t bits) {
            return p.exact_bits(b, bits, options);
        });
    return exact_bits(budget, budget_bits(budget), options);
}

Allocation AllocationProblem::exact_bits(const Budget& budget, int64_t bits, const ExactOptions& options) const {
    if (bits < min_bits_) throw_infeasible(budget, bits);
    const LagrangianPoint p = lagrangian_point(bits, true);

    auto finish = [&](std::vector<int> choice, bool proven, double lower_bound, int64_t unit) {
        // A coarsened DP step can miss a uniform setting that fits exactly; never return worse than one.
        if (!proven) uniform_floor(choice, bits);
        Allocation a = assemble(budget, bits, choice, "exact");
        a.lambda = p.lambda;
        a.proven_optimal = proven;
        a.lower_bound = proven ? a.total_cost : std::min(lower_bound, a.total_cost);
        a.gap = a.total_cost - a.lower_bound;
        a.resolution_bits = unit;
        return a;
    };
    if (p.proven) return finish(p.option_of_item, true, p.cost, unit_bits_);

    // The LP bound from reduced costs (bits counted above each item's least keeps the products small).
    const double lam = p.lambda;
    const size_t n = items_.size();
    std::vector<double> least(n);
    double lb = -lam * static_cast<double>(bits - min_bits_), scale = 0;
    for (size_t i = 0; i < n; ++i) {
        const Item& it = items_[i];
        double m = kInf, big = 0;
        for (int j = 0; j < it.n_options; ++j) {
            const Option& o = options_list_[it.first_option + j];
            m = std::min(m, o.cost + lam * static_cast<double>(o.bits - it.min_bits));
            big = std::max(big, std::abs(o.cost));
        }
        least[i] = m;
        lb += m;
        scale += big;
    }
    const double gap = std::max(0.0, p.cost - lb);
    const double keep = gap + 1e-9 * (scale + gap);  // rounding may only keep more options, never fewer

    // Fix what the bound fixes; the rest is the DP's.
    std::vector<int> choice(n);
    std::vector<FreeItem> open;
    std::vector<int64_t> fixed_over;  // per item with one survivor, its bits above the item's least
    for (size_t i = 0; i < n; ++i) {
        const Item& it = items_[i];
        FreeItem fi;
        fi.item = static_cast<int>(i);
        for (int j = 0; j < it.n_options; ++j) {
            const Option& o = options_list_[it.first_option + j];
            const int64_t over = o.bits - it.min_bits;
            if (o.cost + lam * static_cast<double>(over) - least[i] > keep) continue;
            fi.options.push_back(j);
            fi.over.push_back(over);
            fi.costs.push_back(o.cost);
        }
        if (fi.options.size() == 1) {
            choice[i] = fi.options[0];
            fixed_over.push_back(fi.over[0]);
        } else {
            open.push_back(std::move(fi));  // never empty: the option at the minimum of r has r = 0
        }
    }

    // Steps at the problem's resolution, doubled only if the table would be too big.
    int64_t unit = unit_bits_;
    int64_t capacity = 0;
    bool lossless = true;
    for (;;) {
        auto up = [unit](int64_t over) { return (over + unit - 1) / unit; };
        lossless = true;
        capacity = (bits - min_bits_) / unit;
        for (int64_t o : fixed_over) capacity -= up(o), lossless = lossless && o % unit == 0;
        // Each free item's DP weights count from its least surviving step (the same rounding, shifted), so
        // the table spans only the surviving options' spread.
        int64_t most = 0;
        size_t widest = 0;
        for (auto& fi : open) {
            fi.steps.resize(fi.over.size());
            int64_t lo = INT64_MAX, hi = 0;
            for (size_t j = 0; j < fi.over.size(); ++j) {
                fi.steps[j] = up(fi.over[j]);
                lossless = lossless && fi.over[j] % unit == 0;
                lo = std::min(lo, fi.steps[j]), hi = std::max(hi, fi.steps[j]);
            }
            for (auto& st : fi.steps) st -= lo;
            capacity -= lo;
            most += hi - lo;
            widest = std::max(widest, fi.options.size());
        }
        if (capacity < 0) return finish(p.option_of_item, false, lb, unit);  // rounding ate the budget
        capacity = std::min(capacity, most);
        const double cells = static_cast<double>(open.size()) * static_cast<double>(capacity + 1) *
                             (widest > 256 ? 2.0 : 1.0);
        if (cells <= static_cast<double>(options.max_dp_cells) || capacity == 0) break;
        unit *= 2;
    }

    std::vector<int> pick;
    const bool wide = std::any_of(open.begin(), open.end(), [](const FreeItem& fi) { return fi.options.size() > 256; });
    const double dp = wide ? knapsack<uint16_t>(open, capacity, pick) : knapsack<uint8_t>(open, capacity, pick);
    if (dp < kInf) {
        for (size_t f = 0; f < open.size(); ++f) choice[open[f].item] = open[f].options[pick[f]];
        double cost = 0;  // summed like p.cost, so the comparison is fair
        for (size_t i = 0; i < n; ++i) cost += options_list_[items_[i].first_option + choice[i]].cost;
        if (cost < p.cost) return finish(choice, lossless, lb, unit);
    }
    // Nothing beats the Lagrangian choice; with a lossless DP that proves it optimal.
    return finish(p.option_of_item, lossless && dp < kInf, lb, unit);
}

}  // namespace quench
