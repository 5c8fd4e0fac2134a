#pragma once
// A bit-allocation problem, checked and precomputed once so that re-solving for another budget (a GUI slider
// moving) does only the budget-dependent work. Minimises the sum of predicted costs subject to total bits <=
// budget, one candidate per layer, under the constraints of AllocConstraints. See docs/allocation.md.
//
//   AllocationProblem problem(spec);                                  // throws quench::Error, once
//   Allocation a = problem.solve_lagrangian(Budget::bits_per_weight(2.37));   // microseconds, per move
//   Allocation b = problem.solve_exact(Budget::bytes(60e6));          // proven optimal in the usual case
//
// Solving is const and allocates only its own scratch, so several threads may solve one problem at once.
//
// Shared parts (AllocCandidate::shared_key) make the cost of a layer depend on the others: a lift matrix is
// paid by the first layer that uses it. With K keys the problem is solved as 2^K plain ones (K <= 8; beyond,
// the subsets of at most two keys and all of them), one per set of keys paid up front, whose candidates are
// those the set allows; the cheapest wins (shared_parts.cpp). Every solve is also never worse in predicted
// cost than any uniform setting (one spec on every layer the constraints leave free) that fits the budget.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "alloc/allocation.h"
#include "alloc/allocation_spec.h"

namespace quench {

struct ProblemOptions {
    // The exact solver's budget resolution: the range of bits the layers can add above their smallest
    // setting is cut into at most this many steps (unless the candidates' bit counts share a coarser common
    // step, which is then used and loses nothing).
    int64_t exact_steps = int64_t(1) << 24;
};

struct LagrangianOptions {
    bool fill = true;  // after the hull point, spend the leftover budget greedily on further hull steps
};

struct ExactOptions {
    // Most DP cells (free layers x budget steps) one solve may use (one byte each); beyond it the step is
    // doubled until it fits, and the result is then no longer proven optimal unless the bound closes.
    int64_t max_dp_cells = int64_t(1) << 26;
};

enum class AllocSolver { Lagrangian, Exact };

class AllocationProblem {
public:
    explicit AllocationProblem(AllocationSpec spec, ProblemOptions options = {});

    const AllocationSpec& spec() const { return spec_; }
    const ProblemOptions& options() const { return options_; }
    int64_t total_weights() const { return total_weights_; }
    // The slider's range: the fewest bits the constraints allow, and the bits beyond which no layer gains.
    int64_t min_bits() const { return min_bits_; }
    int64_t max_useful_bits() const { return max_useful_bits_; }
    double min_bits_per_weight() const { return double(min_bits_) / double(total_weights_); }
    double max_useful_bits_per_weight() const { return double(max_useful_bits_) / double(total_weights_); }
    // The exact solver's budget step in bits (see ProblemOptions).
    int64_t resolution_bits() const { return unit_bits_; }

    // The budget in whole bits (rounded down); throws quench::Error for a negative or non-finite value.
    int64_t budget_bits(const Budget& budget) const;

    // Both throw quench::Error when the budget is below min_bits().
    Allocation solve_lagrangian(const Budget& budget, const LagrangianOptions& options = {}) const;
    Allocation solve_exact(const Budget& budget, const ExactOptions& options = {}) const;
    Allocation solve(const Budget& budget, AllocSolver solver) const {
        return solver == AllocSolver::Exact ? solve_exact(budget) : solve_lagrangian(budget);
    }

private:
    // One choice unit: a single layer, or a tied group whose members take the same spec. Its options are the
    // Pareto-optimal (bits up, cost strictly down) settings allowed for all members, sorted by bits.
    struct Item {
        int first_member = 0, n_members = 0;  // into members_
        int first_option = 0, n_options = 0;  // into options_list_
        int first_cand = 0;                   // into option_cands_: n_options x n_members candidate indices
        int first_hull = 0, n_hull = 0;       // into hull_: option indices (within the item) on the lower hull
        int64_t min_bits = 0;                 // bits of option 0
        int64_t raised_bits = 0;              // how much the constraints raised min_bits (for the error message)
        std::string raised_by;                // which constraint did ("layer 'x' pinned to 'rtn:b=8'")
    };
    struct Option {
        int64_t bits = 0;
        double cost = 0;
        int64_t steps = 0;   // (bits - item min_bits) / unit_bits_, rounded up: the exact DP's weight
        bool exact = true;   // that division had no remainder
    };
    struct Segment {           // one step along an item's lower hull, from hull position to-1 to to
        int item = 0, to = 0;
        int64_t bits = 0;      // bits added, > 0
        double gain = 0;       // cost removed, > 0
        double slope = 0;      // gain / bits; non-increasing along each item's hull
    };
    struct LagrangianPoint;    // a solve's state, shared by both solvers (lagrangian_solver.cpp)

    void build_items();
    void build_hulls();
    void build_steps();
    LagrangianPoint lagrangian_point(int64_t budget_bits, bool fill) const;
    Allocation assemble(const Budget& budget, int64_t budget_bits, const std::vector<int>& option_of_item,
                        const char* solver) const;
    // The plain solvers for a budget already in whole bits (the shared-part variants solve with less).
    Allocation lagrangian_bits(const Budget& budget, int64_t bits, const LagrangianOptions& options) const;
    Allocation exact_bits(const Budget& budget, int64_t bits, const ExactOptions& options) const;
    // Replaces `choice` by the cheapest uniform setting that fits `bits` and costs less; true when it did.
    bool uniform_floor(std::vector<int>& choice, int64_t bits) const;
    void build_uniform();

    // Shared parts (shared_parts.cpp). A variant is the plain problem in which the keys of `keys` are paid.
    struct SharedVariant {
        std::vector<std::string> keys;
        int64_t bits = 0;  // their shared bits
        std::shared_ptr<const AllocationProblem> problem;
        std::vector<std::vector<int>> cand_of;  // per layer, variant candidate -> candidate of this problem
    };
    static bool has_shared_parts(const AllocationSpec& spec);
    void build_variants();
    using SolveVariant = std::function<Allocation(const AllocationProblem&, const Budget&, int64_t bits)>;
    Allocation solve_shared(const Budget& budget, const SolveVariant& solve) const;
    [[noreturn]] void throw_infeasible(const Budget& budget, int64_t budget_bits) const;

    AllocationSpec spec_;
    ProblemOptions options_;
    int64_t total_weights_ = 0;
    int64_t min_bits_ = 0, max_useful_bits_ = 0;
    double min_cost_total_ = 0;  // cost when every item takes option 0
    int64_t unit_bits_ = 1;

    std::vector<Item> items_;
    std::vector<int> members_;          // layer indices, grouped by item
    std::vector<Option> options_list_;  // grouped by item
    std::vector<int> option_cands_;     // per option, per member: the member's candidate index (-1: excluded)
    std::vector<int> hull_;
    std::vector<Segment> segments_;           // every item's hull steps, by slope descending
    std::vector<int64_t> seg_prefix_bits_;    // bits of the first k segments, k = 0..S
    std::vector<double> seg_prefix_gain_;
    std::vector<int64_t> seg_suffix_min_bits_;  // smallest step among segments k..S-1 (fill stops early)
    std::vector<int> item_of_layer_, member_pos_of_layer_, group_of_layer_;
    std::vector<char> pinned_layer_, excluded_layer_;
    std::vector<std::vector<int64_t>> cand_bits_;  // per layer, per candidate: total bits (rounded up)
    std::vector<int64_t> excluded_bits_;           // per layer: bits at full precision (excluded layers)
    // Uniform settings: specs every item with a choice may take, and per spec and item the option that setting
    // lands on (the spec itself or the front option that dominates it).
    std::vector<std::string> uniform_specs_;
    std::vector<int> uniform_option_;  // uniform_specs_.size() x items_.size()
    std::vector<std::vector<std::pair<std::string, int64_t>>> item_specs_;  // build scratch: allowed spec, bits
    std::vector<SharedVariant> variants_;  // empty when no candidate names a shared part
    bool variants_complete_ = true;        // every subset of keys was tried (else no optimality proof)
    std::map<std::string, int64_t> shared_key_bits_;
};

}  // namespace quench
