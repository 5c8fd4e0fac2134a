// Allocation with shared parts: a lift matrix or codebook is stored once per model, so its bits are paid by
// the first layer that uses it, not by every layer. That cost is not separable per layer, so the problem is
// split on which parts are paid: for each set S of shared keys, the plain problem whose layers may take only
// candidates whose key is in S (or that have none), with S's bits taken off the budget. The best answer over
// every S is the optimum of the joint problem (a choice uses some set of keys; the variant of exactly that set
// can make it). Real candidate lists name one or two keys (a LiftQuant and a QAM-W setting), so 2^K is small.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "alloc/allocation_problem.h"
#include "alloc/allocation_text.h"
#include "common/error.h"

namespace quench {

using alloc_text::fail;

namespace {

constexpr int kAllSubsetsUpTo = 8;  // 256 variants; beyond, subsets of <= 2 keys and the full set

std::vector<uint64_t> key_sets(int K, bool& complete) {
    std::vector<uint64_t> sets;
    const uint64_t all = K >= 64 ? ~uint64_t(0) : (uint64_t(1) << K) - 1;
    sets.push_back(all);
    complete = K <= kAllSubsetsUpTo;
    if (complete) {
        for (uint64_t m = 0; m < all; ++m) sets.push_back(m);
        return sets;
    }
    sets.push_back(0);
    for (int a = 0; a < K; ++a) {
        sets.push_back(uint64_t(1) << a);
        for (int b = a + 1; b < K; ++b) sets.push_back((uint64_t(1) << a) | (uint64_t(1) << b));
    }
    return sets;
}

}  // namespace

bool AllocationProblem::has_shared_parts(const AllocationSpec& spec) {
    for (const auto& l : spec.layers)
        for (const auto& c : l.candidates)
            if (!c.shared_key.empty()) return true;
    return false;
}

void AllocationProblem::build_variants() {
    // One key, one size: two candidates that disagree on a part's bits are a caller's error.
    std::map<std::string, std::pair<int64_t, std::string>> keys;  // key -> bits, first layer naming it
    for (const auto& l : spec_.layers) {
        total_weights_ += std::max<int64_t>(l.weights, 0);
        for (const auto& c : l.candidates) {
            if (c.shared_key.empty()) continue;
            if (c.shared_bits < 0)
                fail("layer " + alloc_text::quoted(l.name) + ": candidate " + alloc_text::quoted(c.spec) + " has shared_bits " +
                     std::to_string(c.shared_bits));
            const auto [it, added] = keys.try_emplace(c.shared_key, c.shared_bits, l.name);
            if (!added && it->second.first != c.shared_bits)
                fail("shared part " + alloc_text::quoted(c.shared_key) + " has " + std::to_string(it->second.first) +
                     " bits for layer " + alloc_text::quoted(it->second.second) + " but " + std::to_string(c.shared_bits) +
                     " for layer " + alloc_text::quoted(l.name));
        }
    }
    std::vector<std::string> names;
    std::vector<int64_t> bits;
    for (const auto& [k, v] : keys) names.push_back(k), bits.push_back(v.first), shared_key_bits_[k] = v.first;
    const int K = static_cast<int>(names.size());

    bool first = true;  // the set of every key: when even it is infeasible, its error is the problem's
    for (const uint64_t set : key_sets(K, variants_complete_)) {
        SharedVariant v;
        AllocationSpec sub = spec_;
        v.cand_of.resize(sub.layers.size());
        for (int k = 0; k < K; ++k)
            if (set >> k & 1) v.keys.push_back(names[k]), v.bits += bits[k];
        for (size_t l = 0; l < sub.layers.size(); ++l) {
            std::vector<AllocCandidate> kept;
            const auto& cands = spec_.layers[l].candidates;
            for (int c = 0; c < static_cast<int>(cands.size()); ++c) {
                const auto& key = cands[c].shared_key;
                if (!key.empty() && !std::binary_search(v.keys.begin(), v.keys.end(), key)) continue;
                kept.push_back(cands[c]);
                kept.back().shared_key.clear();
                kept.back().shared_bits = 0;
                v.cand_of[l].push_back(c);
            }
            sub.layers[l].candidates = std::move(kept);
        }
        try {
            v.problem = std::make_shared<const AllocationProblem>(std::move(sub), options_);
        } catch (const Error&) {
            if (first) throw;
            continue;  // this set of parts leaves some layer or pin without a candidate
        }
        first = false;
        variants_.push_back(std::move(v));
    }

    const AllocationProblem& full = *variants_.front().problem;
    unit_bits_ = full.unit_bits_;
    min_bits_ = std::numeric_limits<int64_t>::max();
    max_useful_bits_ = 0;
    for (const auto& v : variants_) {
        min_bits_ = std::min(min_bits_, v.problem->min_bits_ + v.bits);
        max_useful_bits_ = std::max(max_useful_bits_, v.problem->max_useful_bits_ + v.bits);
    }
}

Allocation AllocationProblem::solve_shared(const Budget& budget, const SolveVariant& solve) const {
    const int64_t bits = budget_bits(budget);
    if (bits < min_bits_) throw_infeasible(budget, bits);
    std::vector<Allocation> answers(variants_.size());
    std::vector<char> solved(variants_.size(), 0);  // 0: that set of parts does not fit the budget
    int best = -1;
    for (size_t i = 0; i < variants_.size(); ++i) {
        const SharedVariant& v = variants_[i];
        if (bits - v.bits < v.problem->min_bits_) continue;
        answers[i] = solve(*v.problem, budget, bits - v.bits);
        solved[i] = 1;
        if (best < 0 || answers[i].total_cost < answers[best].total_cost) best = static_cast<int>(i);
    }
    Allocation a = answers[best];
    const SharedVariant& v = variants_[best];

    // Back to this problem's candidates; the parts paid are those the choice uses (never more than v's).
    std::vector<std::string> used;
    int64_t layer_bits = 0;
    for (size_t l = 0; l < a.layers.size(); ++l) {
        LayerChoice& ch = a.layers[l];
        layer_bits += ch.bits;
        if (ch.candidate < 0) continue;
        ch.candidate = v.cand_of[l][ch.candidate];
        const auto& key = spec_.layers[l].candidates[ch.candidate].shared_key;
        if (!key.empty()) used.push_back(key);
    }
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    a.shared_keys = used;
    a.shared_bits = 0;
    for (const auto& key : used) a.shared_bits += shared_key_bits_.at(key);
    a.budget = budget;
    a.budget_bits = bits;
    a.total_bits = layer_bits + a.shared_bits;
    a.bits_per_weight = double(a.total_bits) / double(total_weights_);
    a.bytes = double(a.total_bits) / 8.0;
    if (a.total_bits > bits) throw Error("allocation: internal error: shared parts exceeded the budget");

    // A proof needs every set of parts tried and none of them able to do better.
    a.proven_optimal = variants_complete_;
    for (size_t i = 0; i < variants_.size(); ++i) {
        if (!solved[i]) continue;
        a.lower_bound = std::min(a.lower_bound, answers[i].lower_bound);
        a.proven_optimal = a.proven_optimal && answers[i].lower_bound >= a.total_cost;
    }
    a.lower_bound = std::min(a.lower_bound, a.total_cost);
    a.gap = a.total_cost - a.lower_bound;
    return a;
}

}  // namespace quench
