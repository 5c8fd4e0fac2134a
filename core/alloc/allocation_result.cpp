// Budgets in whole bits, the infeasible-budget error, and turning a per-unit choice into the per-layer result.
#include <algorithm>
#include <cmath>

#include "alloc/allocation_problem.h"
#include "alloc/allocation_text.h"
#include "common/error.h"

namespace quench {

using alloc_text::fail;
using alloc_text::num;

namespace {
constexpr long double kMaxBits = 4.0e18L;  // budgets beyond this are unlimited in practice
}  // namespace

int64_t AllocationProblem::budget_bits(const Budget& budget) const {
    const bool bpw = budget.unit == Budget::Unit::BitsPerWeight;
    if (!(std::isfinite(budget.value) && budget.value >= 0))
        fail("budget " + num(budget.value) + (bpw ? " bits per weight" : " bytes") + " is not a non-negative number");
    // Rounded down, so that meeting the whole-bit budget meets the stated one; 1e-6 bit absorbs the decimal
    // noise of products such as 2.3 x 10.
    const long double x = bpw ? static_cast<long double>(budget.value) * total_weights_ : budget.value * 8.0L;
    if (x >= kMaxBits) return static_cast<int64_t>(kMaxBits);
    return static_cast<int64_t>(std::floor(x + 1e-6L));
}

void AllocationProblem::throw_infeasible(const Budget& budget, int64_t bits) const {
    const double W = static_cast<double>(total_weights_);
    const bool bpw = budget.unit == Budget::Unit::BitsPerWeight;
    std::string msg = "budget of " + num(budget.value) + (bpw ? " bits per weight (" + num(bits / 8.0) + " bytes)"
                                                             : " bytes (" + num(bits / W) + " bits per weight)") +
                      " is below the least the candidates and constraints allow: " + num(min_bits_ / W) +
                      " bits per weight (" + num(min_bits_ / 8.0) + " bytes)";
    // With shared parts the constraints live in the variant that pays for every part (built first).
    const auto& items = variants_.empty() ? items_ : variants_.front().problem->items_;
    const auto worst = std::max_element(items.begin(), items.end(),
                                        [](const Item& a, const Item& b) { return a.raised_bits < b.raised_bits; });
    if (worst != items.end() && worst->raised_bits > 0)
        msg += "; the constraint that adds most is " + worst->raised_by + " (+" + std::to_string(worst->raised_bits) + " bits)";
    fail(msg);
}

Allocation AllocationProblem::assemble(const Budget& budget, int64_t bbits, const std::vector<int>& option_of_item,
                                       const char* solver) const {
    Allocation a;
    a.solver = solver;
    a.budget = budget;
    a.budget_bits = bbits;
    a.total_weights = total_weights_;
    a.resolution_bits = 0;
    const auto& layers = spec_.layers;
    a.layers.reserve(layers.size());
    const double xbpw = spec_.constraints.excluded_bits_per_weight;
    const std::string full = xbpw == std::floor(xbpw) ? "fp" + std::to_string(static_cast<int64_t>(xbpw)) : "fp" + num(xbpw);
    for (size_t l = 0; l < layers.size(); ++l) {
        const Item& it = items_[item_of_layer_[l]];
        const int opt = option_of_item[item_of_layer_[l]];
        const int c = option_cands_[it.first_cand + opt * it.n_members + member_pos_of_layer_[l]];
        LayerChoice ch;
        ch.name = layers[l].name;
        ch.weights = layers[l].weights;
        ch.candidate = c;
        ch.excluded = excluded_layer_[l] != 0;
        ch.pinned = pinned_layer_[l] != 0;
        ch.tied_group = group_of_layer_[l];
        if (c < 0) {
            ch.spec = full;
            ch.bits = excluded_bits_[l];
        } else {
            ch.spec = layers[l].candidates[c].spec;
            ch.bits = cand_bits_[l][c];
            ch.cost = layers[l].candidates[c].cost;
        }
        ch.bits_per_weight = double(ch.bits) / double(ch.weights);
        a.total_bits += ch.bits;
        a.total_cost += ch.cost;
        a.layers.push_back(std::move(ch));
    }
    a.bits_per_weight = double(a.total_bits) / double(total_weights_);
    a.bytes = double(a.total_bits) / 8.0;
    if (a.total_bits > bbits)  // the solvers' invariant; reaching here is a bug, never a silent overrun
        throw Error("allocation: internal error: " + std::string(solver) + " solver exceeded the budget");
    return a;
}

std::vector<std::vector<std::string>> tied_groups_per_block(const std::vector<AllocLayer>& layers,
                                                            const std::set<std::string>& kinds) {
    std::map<int, std::vector<std::string>> by_block;
    for (const auto& l : layers)
        if (l.block >= 0 && kinds.count(l.kind)) by_block[l.block].push_back(l.name);
    std::vector<std::vector<std::string>> out;
    for (auto& [block, names] : by_block)
        if (names.size() >= 2) out.push_back(std::move(names));
    return out;
}

}  // namespace quench
