#pragma once
// Random allocation problems with fixed seeds, and two independent references to check the solvers against:
// brute force over every per-layer assignment (small problems) and a plain multiple-choice knapsack DP over
// whole bits (medium problems). Neither shares code with core/alloc.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "alloc/allocation_problem.h"
#include "alloc/allocation_spec.h"

namespace quench::alloc_test {

// Total bits per weight of the candidate pool. Every layer has a multiple of 64 weights, so each candidate's
// bits are whole (as real codecs' are) and the test can count them without rounding.
inline const std::vector<double> kPoolBpw = {2.0, 2.25, 2.375, 2.5, 3.0, 3.25, 4.0, 4.25, 5.0, 6.0, 8.25};
inline std::string pool_spec(size_t i) { return "codec:" + std::to_string(i); }

struct GenOptions {
    int layers = 5;
    int candidates = 4;          // per layer, drawn from kPoolBpw without repetition
    double dominated_p = 0.2;    // chance a candidate's cost is random (often dominated, off the hull)
    int64_t max_chunks = 32;     // weights = 64 * uniform(1, max_chunks)
};

inline AllocationSpec random_spec(uint64_t seed, const GenOptions& g) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    static const char* kinds[] = {"q", "k", "v", "o", "gate", "up", "down"};
    AllocationSpec s;
    for (int l = 0; l < g.layers; ++l) {
        AllocLayer L;
        L.name = "model.layers." + std::to_string(l / 7) + "." + kinds[l % 7];
        L.kind = kinds[l % 7];
        L.block = l / 7;
        L.weights = 64 * (1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(g.max_chunks)));
        std::vector<size_t> idx(kPoolBpw.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::shuffle(idx.begin(), idx.end(), rng);
        idx.resize(std::min<size_t>(g.candidates, idx.size()));
        std::sort(idx.begin(), idx.end());
        const double scale = 0.2 + 3.0 * u01(rng);
        for (size_t i : idx) {
            AllocCandidate c;
            c.spec = pool_spec(i);
            c.bits_per_weight = kPoolBpw[i];
            // Error falls about 4x per bit, with noise; sometimes a candidate is just bad.
            c.cost = u01(rng) < g.dominated_p ? scale * u01(rng)
                                               : scale * std::exp2(-2.0 * (kPoolBpw[i] - 2.0)) * (0.7 + 0.6 * u01(rng));
            L.candidates.push_back(c);
        }
        s.layers.push_back(L);
    }
    return s;
}

// `count` budgets from the least allowed to a little past the most useful, both ends included.
inline std::vector<int64_t> budgets(const AllocationProblem& p, uint64_t seed, int count) {
    std::mt19937_64 rng(seed);
    std::vector<int64_t> out = {p.min_bits(), p.max_useful_bits()};
    const uint64_t span = static_cast<uint64_t>(p.max_useful_bits() - p.min_bits()) + 64;
    while (static_cast<int>(out.size()) < count) out.push_back(p.min_bits() + static_cast<int64_t>(rng() % span));
    return out;
}

// A budget of exactly b bits (b / 8 bytes is exact in a double, and so is its product by 8).
inline Budget bits_budget(int64_t b) { return Budget::bytes(static_cast<double>(b) / 8.0); }

// Tolerance for comparing a solver's total cost with a reference's.
inline double tol(double ref) { return 1e-12 * (1.0 + std::abs(ref)); }

inline int64_t cand_bits(const AllocLayer& L, const AllocCandidate& c) {
    return std::llround(static_cast<double>(L.weights) * c.bits_per_weight + c.extra_bits);
}

struct Reference {
    bool feasible = false;
    double cost = std::numeric_limits<double>::infinity();
    int64_t bits = 0;
};

// Every assignment of one candidate per layer that satisfies the constraints and the budget; the cheapest.
inline Reference brute_force(const AllocationSpec& s, int64_t budget_bits) {
    const auto& cons = s.constraints;
    const size_t n = s.layers.size();
    std::vector<std::vector<int>> allowed(n);
    for (size_t l = 0; l < n; ++l) {
        const auto& L = s.layers[l];
        if (cons.excluded_kinds.count(L.kind)) {
            allowed[l] = {-1};
            continue;
        }
        const auto lim = cons.layer_limits.count(L.name) ? cons.layer_limits.at(L.name) : cons.limits;
        for (size_t c = 0; c < L.candidates.size(); ++c) {
            const double bpw = double(cand_bits(L, L.candidates[c])) / double(L.weights);
            if (bpw < lim.min_bits_per_weight - 1e-9 || bpw > lim.max_bits_per_weight + 1e-9) continue;
            if (cons.pins.count(L.name) && cons.pins.at(L.name) != L.candidates[c].spec) continue;
            allowed[l].push_back(static_cast<int>(c));
        }
        if (allowed[l].empty()) return {};
    }
    std::map<std::string, size_t> index;
    for (size_t l = 0; l < n; ++l) index[s.layers[l].name] = l;
    Reference best;
    std::vector<size_t> at(n, 0);
    for (;;) {
        bool ok = true;
        for (const auto& group : cons.tied) {
            const size_t a = index.at(group[0]);
            for (const auto& name : group) {
                const size_t b = index.at(name);
                const int ca = allowed[a][at[a]], cb = allowed[b][at[b]];
                const std::string sa = ca < 0 ? "fp" : s.layers[a].candidates[ca].spec;
                const std::string sb = cb < 0 ? "fp" : s.layers[b].candidates[cb].spec;
                ok = ok && sa == sb;
            }
        }
        if (ok) {
            int64_t bits = 0;
            double cost = 0;
            for (size_t l = 0; l < n; ++l) {
                const int c = allowed[l][at[l]];
                if (c < 0) {
                    bits += std::llround(s.layers[l].weights * cons.excluded_bits_per_weight);
                } else {
                    bits += cand_bits(s.layers[l], s.layers[l].candidates[c]);
                    cost += s.layers[l].candidates[c].cost;
                }
            }
            if (bits <= budget_bits && cost < best.cost) best = {true, cost, bits};
        }
        size_t l = 0;
        while (l < n && ++at[l] == allowed[l].size()) at[l++] = 0;
        if (l == n) break;
    }
    return best;
}

// Untied, unconstrained problems: a textbook DP over whole bits divided by their common divisor.
inline Reference plain_dp(const AllocationSpec& s, int64_t budget_bits) {
    int64_t g = 0, least = 0;
    for (const auto& L : s.layers) {
        int64_t lo = INT64_MAX;
        for (const auto& c : L.candidates) lo = std::min(lo, cand_bits(L, c));
        least += lo;
        for (const auto& c : L.candidates) g = std::gcd(g, cand_bits(L, c) - lo);
    }
    if (budget_bits < least) return {};
    if (g == 0) g = 1;
    const int64_t cap = (budget_bits - least) / g;
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> f(cap + 1, 0.0), next(cap + 1);
    for (const auto& L : s.layers) {
        int64_t lo = INT64_MAX;
        for (const auto& c : L.candidates) lo = std::min(lo, cand_bits(L, c));
        std::fill(next.begin(), next.end(), inf);
        for (const auto& c : L.candidates) {
            const int64_t d = (cand_bits(L, c) - lo) / g;
            for (int64_t b = d; b <= cap; ++b) next[b] = std::min(next[b], f[b - d] + c.cost);
        }
        f.swap(next);
    }
    return {f[cap] < inf, f[cap], 0};
}

}  // namespace quench::alloc_test
