// Bit allocation: both solvers against brute force on small random problems (fixed seeds) and against a
// plain knapsack DP on medium ones; constraints always respected; the budget never exceeded; more budget
// never costs more; contradictions and infeasible budgets give one-line errors naming the layer and the
// constraint.
#include <gtest/gtest.h>

#include <set>

#include "alloc/allocation_problem.h"
#include "alloc_test_util.h"
#include "support/errors.h"

using namespace quench;
using namespace quench::alloc_test;
using quench::test::error_of;

namespace {

// The result says what it chose, and its numbers add up, from the spec's own candidates.
void expect_consistent(const AllocationSpec& s, const Allocation& a) {
    ASSERT_EQ(a.layers.size(), s.layers.size());
    int64_t bits = 0, weights = 0;
    double cost = 0;
    for (size_t l = 0; l < s.layers.size(); ++l) {
        const auto& L = s.layers[l];
        const auto& ch = a.layers[l];
        EXPECT_EQ(ch.name, L.name);
        EXPECT_EQ(ch.weights, L.weights);
        if (s.constraints.excluded_kinds.count(L.kind)) {
            EXPECT_TRUE(ch.excluded);
            EXPECT_EQ(ch.candidate, -1);
            EXPECT_EQ(ch.bits, std::llround(L.weights * s.constraints.excluded_bits_per_weight));
            EXPECT_EQ(ch.cost, 0.0);
        } else {
            ASSERT_GE(ch.candidate, 0);
            ASSERT_LT(ch.candidate, static_cast<int>(L.candidates.size()));
            const auto& c = L.candidates[ch.candidate];
            EXPECT_EQ(ch.spec, c.spec);
            EXPECT_EQ(ch.bits, cand_bits(L, c));
            EXPECT_EQ(ch.cost, c.cost);
        }
        EXPECT_DOUBLE_EQ(ch.bits_per_weight, double(ch.bits) / double(L.weights));
        bits += ch.bits, weights += L.weights, cost += ch.cost;
    }
    EXPECT_EQ(a.total_bits, bits);
    EXPECT_EQ(a.total_weights, weights);
    EXPECT_NEAR(a.total_cost, cost, tol(cost));
    EXPECT_DOUBLE_EQ(a.bits_per_weight, double(bits) / double(weights));
    EXPECT_DOUBLE_EQ(a.bytes, double(bits) / 8.0);
    EXPECT_LE(a.total_bits, a.budget_bits);
    EXPECT_GE(a.gap, 0.0);
    EXPECT_NEAR(a.gap, a.total_cost - a.lower_bound, tol(a.total_cost));
    if (a.proven_optimal) { EXPECT_EQ(a.gap, 0.0); }
}

// Pins, limits, ties and exclusions, checked on the result.
void expect_constraints_hold(const AllocationSpec& s, const Allocation& a) {
    const auto& cons = s.constraints;
    std::map<std::string, const LayerChoice*> by_name;
    for (const auto& ch : a.layers) by_name[ch.name] = &ch;
    for (const auto& L : s.layers) {
        const auto& ch = *by_name.at(L.name);
        if (cons.excluded_kinds.count(L.kind)) {
            EXPECT_EQ(ch.spec, "fp" + std::to_string(std::llround(cons.excluded_bits_per_weight)));
            continue;
        }
        if (cons.pins.count(L.name)) {
            EXPECT_EQ(ch.spec, cons.pins.at(L.name)) << L.name;
            EXPECT_TRUE(ch.pinned);
        }
        const auto lim = cons.layer_limits.count(L.name) ? cons.layer_limits.at(L.name) : cons.limits;
        EXPECT_GE(ch.bits_per_weight, lim.min_bits_per_weight - 1e-9) << L.name;
        EXPECT_LE(ch.bits_per_weight, lim.max_bits_per_weight + 1e-9) << L.name;
    }
    for (const auto& group : cons.tied)
        for (const auto& name : group) {
            EXPECT_EQ(by_name.at(name)->spec, by_name.at(group[0])->spec) << name;
            EXPECT_GE(by_name.at(name)->tied_group, 0);
            EXPECT_EQ(by_name.at(name)->tied_group, by_name.at(group[0])->tied_group);
        }
}

// The largest possible Lagrangian gap (docs/allocation.md): the cost a unit saves going from its fewest bits
// to its cheapest setting, for untied, unconstrained problems.
double largest_step_gain(const AllocationSpec& s) {
    double most = 0;
    for (const auto& L : s.layers) {
        int64_t lo = INT64_MAX;
        double at_lo = INFINITY, cheapest = INFINITY;
        for (const auto& c : L.candidates) {
            const int64_t b = cand_bits(L, c);
            if (b < lo || (b == lo && c.cost < at_lo)) lo = b, at_lo = c.cost;
            cheapest = std::min(cheapest, c.cost);
        }
        most = std::max(most, at_lo - cheapest);
    }
    return most;
}

GenOptions small(uint64_t seed) {
    GenOptions g;
    g.layers = 1 + static_cast<int>(seed % 6);
    g.candidates = 1 + static_cast<int>(seed % 4);
    return g;
}

}  // namespace

TEST(Allocation, ExactSolverEqualsBruteForce) {
    for (uint64_t seed = 1; seed <= 160; ++seed) {
        const auto spec = random_spec(seed, small(seed));
        const AllocationProblem p(spec);
        for (int64_t b : budgets(p, seed * 7, 6)) {
            const auto ref = brute_force(spec, b);
            ASSERT_TRUE(ref.feasible);
            const auto a = p.solve_exact(bits_budget(b));
            expect_consistent(spec, a);
            EXPECT_EQ(a.solver, "exact");
            EXPECT_EQ(a.budget_bits, b);
            EXPECT_TRUE(a.proven_optimal) << "seed " << seed << " budget " << b;
            EXPECT_NEAR(a.total_cost, ref.cost, tol(ref.cost)) << "seed " << seed << " budget " << b;
        }
    }
}

TEST(Allocation, LagrangianIsWithinItsProvenGapOfBruteForce) {
    int runs = 0, optimal = 0;
    for (uint64_t seed = 1; seed <= 160; ++seed) {
        const auto spec = random_spec(seed, small(seed));
        const AllocationProblem p(spec);
        const double bound = largest_step_gain(spec);
        for (int64_t b : budgets(p, seed * 7, 6)) {
            const auto ref = brute_force(spec, b);
            const auto a = p.solve_lagrangian(bits_budget(b));
            expect_consistent(spec, a);
            EXPECT_EQ(a.solver, "lagrangian");
            EXPECT_GE(a.total_cost, ref.cost - tol(ref.cost));            // brute force is the optimum
            EXPECT_LE(a.lower_bound, ref.cost + tol(ref.cost));           // the bound is a real bound
            EXPECT_LE(a.total_cost, ref.cost + a.gap + tol(ref.cost));    // hence the gap is proven
            EXPECT_LE(a.gap, bound + tol(bound));                         // and no larger than documented
            if (a.proven_optimal) { EXPECT_NEAR(a.total_cost, ref.cost, tol(ref.cost)); }
            ++runs;
            optimal += std::abs(a.total_cost - ref.cost) <= tol(ref.cost);
        }
    }
    EXPECT_GT(optimal, runs / 2) << optimal << " of " << runs << " optimal";
}

TEST(Allocation, LagrangianHullPointsAreOptimalForTheBitsTheyUse) {
    for (uint64_t seed = 1; seed <= 160; ++seed) {
        const auto spec = random_spec(seed, small(seed));
        const AllocationProblem p(spec);
        for (int64_t b : budgets(p, seed * 11, 6)) {
            const auto a = p.solve_lagrangian(bits_budget(b), {/*fill=*/false});
            expect_consistent(spec, a);
            const auto ref = brute_force(spec, a.total_bits);
            EXPECT_NEAR(a.total_cost, ref.cost, tol(ref.cost)) << "seed " << seed << " budget " << b;
        }
    }
}

TEST(Allocation, ExactSolverMatchesAPlainKnapsackOnMediumProblems) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        GenOptions g;
        g.layers = 40, g.candidates = 6, g.max_chunks = 64;
        const auto spec = random_spec(1000 + seed, g);
        const AllocationProblem p(spec);
        for (int64_t b : budgets(p, seed, 8)) {
            const auto ref = plain_dp(spec, b);
            const auto a = p.solve_exact(bits_budget(b));
            const auto l = p.solve_lagrangian(bits_budget(b));
            expect_consistent(spec, a);
            EXPECT_TRUE(a.proven_optimal);
            EXPECT_NEAR(a.total_cost, ref.cost, tol(ref.cost)) << "seed " << seed << " budget " << b;
            EXPECT_LE(a.total_cost, l.total_cost + tol(l.total_cost));
        }
    }
}

TEST(Allocation, CoarseResolutionStaysWithinBudgetAndNeverLosesToLagrangian) {
    // 16 steps over the whole range cannot represent most bit counts: the DP rounds them up, so it may lose
    // optimality but never the budget, and it keeps the Lagrangian answer when that is better.
    ProblemOptions coarse;
    coarse.exact_steps = 16;
    int proven = 0, runs = 0;
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        GenOptions g;
        g.layers = 40, g.candidates = 6, g.max_chunks = 64;
        const auto spec = random_spec(2000 + seed, g);
        const AllocationProblem p(spec, coarse);
        EXPECT_GT(p.resolution_bits(), 64);
        for (int64_t b : budgets(p, seed, 8)) {
            const auto ref = plain_dp(spec, b);
            const auto a = p.solve_exact(bits_budget(b));
            const auto l = p.solve_lagrangian(bits_budget(b));
            expect_consistent(spec, a);
            EXPECT_EQ(a.resolution_bits % p.resolution_bits(), 0);
            EXPECT_GE(a.total_cost, ref.cost - tol(ref.cost));
            EXPECT_LE(a.total_cost, l.total_cost + tol(l.total_cost));
            EXPECT_LE(a.lower_bound, ref.cost + tol(ref.cost));
            if (a.proven_optimal) { EXPECT_NEAR(a.total_cost, ref.cost, tol(ref.cost)); }
            proven += a.proven_optimal, ++runs;
        }
    }
    EXPECT_LT(proven, runs);  // the setting did make the DP lossy somewhere

    // A DP table capped at 64 cells: the step doubles until it fits; still within budget, still no worse.
    GenOptions g;
    g.layers = 40, g.candidates = 6, g.max_chunks = 64;
    const auto spec = random_spec(3001, g);
    const AllocationProblem p(spec);
    ExactOptions tiny;
    tiny.max_dp_cells = 64;
    int coarsened = 0;
    for (int64_t b : budgets(p, 5, 12)) {
        const auto a = p.solve_exact(bits_budget(b), tiny);
        const auto l = p.solve_lagrangian(bits_budget(b));
        expect_consistent(spec, a);
        EXPECT_LE(a.total_cost, l.total_cost + tol(l.total_cost));
        EXPECT_GE(a.total_cost, plain_dp(spec, b).cost - tol(l.total_cost));
        coarsened += a.resolution_bits > p.resolution_bits();
    }
    EXPECT_GT(coarsened, 0);
}

// Random pins, limits, ties and exclusions. The problem builds exactly when some assignment satisfies the
// constraints (brute force at an unlimited budget), and then both solvers respect them and the exact one is
// optimal.
TEST(Allocation, ConstraintsAreAlwaysRespected) {
    int built = 0, refused = 0;
    for (uint64_t seed = 1; seed <= 300; ++seed) {
        GenOptions g;
        g.layers = 2 + static_cast<int>(seed % 5);
        g.candidates = 2 + static_cast<int>(seed % 3);
        auto spec = random_spec(5000 + seed, g);
        std::mt19937_64 rng(seed);
        auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
        auto any_layer = [&] { return static_cast<size_t>(rng() % spec.layers.size()); };
        auto& cons = spec.constraints;
        const bool exclude_q = chance(0.25);
        if (exclude_q) cons.excluded_kinds = {"q"}, cons.excluded_bits_per_weight = chance(0.5) ? 16 : 32;
        auto excluded = [&](size_t l) { return exclude_q && spec.layers[l].kind == "q"; };
        if (chance(0.5)) cons.limits = {kPoolBpw[rng() % 4], chance(0.5) ? kPoolBpw[4 + rng() % 7] : INFINITY};
        if (chance(0.3)) {
            const size_t l = any_layer();
            if (!excluded(l)) cons.layer_limits[spec.layers[l].name] = {kPoolBpw[rng() % 6], kPoolBpw[5 + rng() % 6]};
        }
        if (chance(0.4)) {
            const size_t l = any_layer();
            const auto& cands = spec.layers[l].candidates;
            if (!excluded(l)) cons.pins[spec.layers[l].name] = cands[rng() % cands.size()].spec;
        }
        for (int t = 0; t < 2; ++t) {
            if (!chance(t == 0 ? 0.6 : 0.3)) continue;
            std::vector<std::string> group;
            for (size_t l = 0; l < spec.layers.size(); ++l)
                if (chance(0.5)) group.push_back(spec.layers[l].name);
            if (group.size() >= 2) cons.tied.push_back(group);
        }
        // Ties force common specs: give tied layers the same candidate pool often enough to be satisfiable.
        if (!cons.tied.empty() && chance(0.7))
            for (size_t l = 1; l < spec.layers.size(); ++l) {
                const auto w = spec.layers[l].weights;
                auto cands = spec.layers[0].candidates;
                for (auto& c : cands) c.cost *= 0.5 + std::uniform_real_distribution<double>(0, 1)(rng);
                spec.layers[l].candidates = cands;
                spec.layers[l].weights = w;
            }

        const bool satisfiable = brute_force(spec, INT64_MAX).feasible;
        const std::string err = error_of([&] { AllocationProblem{spec}; });
        EXPECT_EQ(err.empty(), satisfiable) << "seed " << seed << ": " << err;
        if (!err.empty()) {
            ++refused;
            EXPECT_EQ(err.rfind("allocation: ", 0), 0u) << err;
            EXPECT_EQ(err.find('\n'), std::string::npos) << err;
            continue;
        }
        if (!satisfiable) continue;
        ++built;
        const AllocationProblem p(spec);
        for (int64_t b : budgets(p, seed * 3, 5)) {
            const auto ref = brute_force(spec, b);
            ASSERT_TRUE(ref.feasible) << "seed " << seed;
            for (const auto& a : {p.solve_exact(bits_budget(b)), p.solve_lagrangian(bits_budget(b))}) {
                expect_consistent(spec, a);
                expect_constraints_hold(spec, a);
                EXPECT_GE(a.total_cost, ref.cost - tol(ref.cost));
                EXPECT_LE(a.lower_bound, ref.cost + tol(ref.cost));
                if (a.solver == "exact") {
                    EXPECT_TRUE(a.proven_optimal);
                    EXPECT_NEAR(a.total_cost, ref.cost, tol(ref.cost)) << "seed " << seed << " budget " << b;
                }
            }
        }
    }
    EXPECT_GT(built, 150);
    EXPECT_GT(refused, 10);
}

TEST(Allocation, MoreBudgetNeverCostsMore) {
    // Whole-bit candidates (lossless DP), then fractional extra bits with a coarse DP step (lossy DP): the
    // exact solver is monotone in both, the Lagrangian one by its greedy's construction.
    for (uint64_t seed = 1; seed <= 6; ++seed) {
        GenOptions g;
        g.layers = 56, g.candidates = 8, g.max_chunks = seed <= 3 ? 64 : 4096;
        auto spec = random_spec(9000 + seed, g);
        spec.constraints.tied = tied_groups_per_block(spec.layers, {"q", "k", "v"});
        const auto gate_up = tied_groups_per_block(spec.layers, {"gate", "up"});
        spec.constraints.tied.insert(spec.constraints.tied.end(), gate_up.begin(), gate_up.end());
        ProblemOptions options;
        if (seed > 3) {
            std::mt19937_64 rng(seed);
            for (auto& L : spec.layers)
                for (auto& c : L.candidates) c.extra_bits = std::uniform_real_distribution<double>(0, 5000)(rng);
            options.exact_steps = 512;
        }
        const AllocationProblem p(spec, options);
        double last_exact = INFINITY, last_lagr = INFINITY;
        const int steps = 300;
        for (int k = 0; k <= steps; ++k) {
            const int64_t b = p.min_bits() + (p.max_useful_bits() - p.min_bits() + 1000) * k / steps;
            const auto e = p.solve_exact(bits_budget(b));
            const auto l = p.solve_lagrangian(bits_budget(b));
            EXPECT_LE(e.total_bits, b);
            EXPECT_LE(l.total_bits, b);
            EXPECT_LE(e.total_cost, last_exact + tol(last_exact)) << "seed " << seed << " step " << k;
            EXPECT_LE(l.total_cost, last_lagr + tol(last_lagr)) << "seed " << seed << " step " << k;
            EXPECT_LE(e.total_cost, l.total_cost + tol(l.total_cost));
            if (seed <= 3) { EXPECT_TRUE(e.proven_optimal); }
            last_exact = e.total_cost, last_lagr = l.total_cost;
        }
        EXPECT_TRUE(p.solve_lagrangian(Budget::bytes(p.max_useful_bits() / 8.0)).proven_optimal);
    }
}

TEST(Allocation, FractionalBudgetIsReachedByMixingSettings) {
    // 2.37 bits per weight over 140 layers from LiftQuant-like settings of 2 to 3 bits in eighths.
    const std::vector<std::pair<std::string, double>> settings = {
        {"liftquant:D=16,d=8", 2.0}, {"liftquant:D=17,d=8", 2.125}, {"liftquant:D=18,d=8", 2.25},
        {"liftquant:D=19,d=8", 2.375}, {"liftquant:D=20,d=8", 2.5}, {"liftquant:D=24,d=8", 3.0}};
    AllocationSpec spec;
    std::mt19937_64 rng(42);
    for (int l = 0; l < 140; ++l) {
        AllocLayer L;
        L.name = "model.layers." + std::to_string(l / 7) + ".proj" + std::to_string(l % 7);
        L.weights = (l % 7 < 4 ? 576 * 576 : 576 * 1536);
        const double scale = std::uniform_real_distribution<double>(0.5, 2.0)(rng);
        for (const auto& [name, bpw] : settings) L.candidates.push_back({name, bpw, 0, scale * std::exp2(-2 * bpw)});
        spec.layers.push_back(L);
    }
    const AllocationProblem p(spec);
    for (const auto& a : {p.solve_lagrangian(Budget::bits_per_weight(2.37)), p.solve_exact(Budget::bits_per_weight(2.37))}) {
        EXPECT_LE(a.bits_per_weight, 2.37);
        EXPECT_GT(a.bits_per_weight, 2.369);
        std::set<std::string> used;
        for (const auto& ch : a.layers) used.insert(ch.spec);
        EXPECT_GE(used.size(), 2u) << a.solver;
    }
    EXPECT_TRUE(p.solve_exact(Budget::bits_per_weight(2.37)).proven_optimal);
}

TEST(Allocation, ExcludedKindsCountAtFullPrecision) {
    AllocationSpec spec;
    spec.layers = {{"model.layers.0.self_attn.q_proj", "q", 0, 1000, {{"rtn:b=2", 2, 0, 1.0}, {"rtn:b=4", 4, 0, 0.1}}},
                   {"lm_head", "lm_head", -1, 500, {{"rtn:b=4", 4, 0, 0.5}}}};
    spec.constraints.excluded_kinds = {"lm_head"};
    for (double full : {16.0, 32.0}) {
        spec.constraints.excluded_bits_per_weight = full;
        const AllocationProblem p(spec);
        EXPECT_EQ(p.total_weights(), 1500);
        EXPECT_EQ(p.min_bits(), 2000 + 500 * static_cast<int64_t>(full));
        const auto a = p.solve_exact(Budget::bytes((4000 + 500 * full) / 8.0));
        EXPECT_EQ(a.layers[1].spec, full == 16 ? "fp16" : "fp32");
        EXPECT_EQ(a.layers[1].bits, 500 * static_cast<int64_t>(full));
        EXPECT_TRUE(a.layers[1].excluded);
        EXPECT_EQ(a.layers[0].spec, "rtn:b=4");
        EXPECT_DOUBLE_EQ(a.total_cost, 0.1);
        EXPECT_DOUBLE_EQ(a.bits_per_weight, (4000 + 500 * full) / 1500);
        // The average budget counts the excluded layer too: 2 bits per weight is now below the least.
        EXPECT_NE(error_of([&] { p.solve_lagrangian(Budget::bits_per_weight(2)); }).find("below the least"), std::string::npos);
    }
}

TEST(Allocation, TiedGroupsPerBlock) {
    GenOptions g;
    g.layers = 15;
    const auto spec = random_spec(3, g);
    const auto groups = tied_groups_per_block(spec.layers, {"q", "k", "v"});
    ASSERT_EQ(groups.size(), 2u);  // blocks 0 and 1; block 2 has only its q (layer 14), so no group
    EXPECT_EQ(groups[0], (std::vector<std::string>{"model.layers.0.q", "model.layers.0.k", "model.layers.0.v"}));
}

// --- Errors: one line, naming the layer and the constraint --------------------------------------------------

namespace {

AllocationSpec three_layers() {
    AllocationSpec s;
    const std::vector<AllocCandidate> c = {{"rtn:b=2,g=64", 2.25, 0, 1.0}, {"rtn:b=4,g=64", 4.25, 0, 0.1},
                                           {"rtn:b=8,g=64", 8.25, 0, 0.01}};
    s.layers = {{"a", "q", 0, 640, c}, {"b", "k", 0, 640, c}, {"c", "lm_head", -1, 640, {c[0], c[1]}}};
    return s;
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
    const std::string e = error_of(fn);
    ASSERT_FALSE(e.empty()) << "no error; expected " << parts.front();
    EXPECT_EQ(e.rfind("allocation: ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    for (const auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "'" << p << "' not in: " << e;
}

}  // namespace

TEST(AllocationErrors, BudgetBelowTheCheapestChoice) {
    const AllocationProblem p(three_layers());
    expect_error([&] { p.solve_exact(Budget::bits_per_weight(2.0)); },
                 {"budget of 2 bits per weight", "below the least", "2.25 bits per weight"});
    expect_error([&] { p.solve_lagrangian(Budget::bytes(100)); }, {"budget of 100 bytes", "540 bytes"});
    auto s = three_layers();
    s.constraints.pins["b"] = "rtn:b=8,g=64";
    const AllocationProblem pinned(s);
    expect_error([&] { pinned.solve_lagrangian(Budget::bits_per_weight(3)); },
                 {"below the least", "layer 'b' pinned to 'rtn:b=8,g=64'", "+3840 bits"});
    s = three_layers();
    s.constraints.layer_limits["a"] = {4, 5};
    const AllocationProblem limited(s);
    expect_error([&] { limited.solve_exact(Budget::bits_per_weight(2.5)); }, {"the limits [4, 5]", "layer 'a'"});
    expect_error([&] { p.solve_exact(Budget::bits_per_weight(-1)); }, {"budget -1 bits per weight"});
    expect_error([&] { p.solve_exact(Budget::bytes(NAN)); }, {"budget nan bytes"});
}

TEST(AllocationErrors, PinsThatContradict) {
    auto s = three_layers();
    s.constraints.pins["nope"] = "rtn:b=4,g=64";
    expect_error([&] { AllocationProblem{s}; }, {"pin on unknown layer 'nope'"});
    s = three_layers();
    s.constraints.pins["a"] = "rtn:b=3,g=64";
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a' is pinned to 'rtn:b=3,g=64', which is not one of its candidates"});
    s = three_layers();
    s.constraints.pins["a"] = "rtn:b=8,g=64";
    s.constraints.limits = {2, 4.5};
    expect_error([&] { AllocationProblem{s}; },
                 {"layer 'a' is pinned to 'rtn:b=8,g=64' (8.25 bits per weight), outside its limits [2, 4.5]"});
    s = three_layers();
    s.constraints.pins["a"] = "rtn:b=2,g=64";
    s.constraints.layer_limits["a"] = {4, 9};
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a' is pinned to 'rtn:b=2,g=64'", "outside its limits [4, 9]"});
    s = three_layers();
    s.constraints.excluded_kinds = {"lm_head"};
    s.constraints.pins["c"] = "rtn:b=4,g=64";
    expect_error([&] { AllocationProblem{s}; }, {"layer 'c' is pinned to 'rtn:b=4,g=64'", "kind 'lm_head' is excluded"});
}

TEST(AllocationErrors, LimitsThatContradict) {
    auto s = three_layers();
    s.constraints.limits = {5, 6};
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a' has no candidate within its limits [5, 6]", "2.25 to 8.25"});
    s = three_layers();
    s.constraints.layer_limits["b"] = {5, 4};
    expect_error([&] { AllocationProblem{s}; }, {"layer 'b'", "limits [5, 4] bits per weight are not a range"});
    s = three_layers();
    s.constraints.layer_limits["x"] = {2, 4};
    expect_error([&] { AllocationProblem{s}; }, {"limits on unknown layer 'x'"});
}

TEST(AllocationErrors, TiedGroupsThatContradict) {
    auto s = three_layers();
    s.constraints.tied = {{"a", "c"}};
    s.constraints.layer_limits["a"] = {8, 9};
    expect_error([&] { AllocationProblem{s}; }, {"tied group ['a', 'c'] has no candidate common to all its members"});
    s = three_layers();
    s.layers[1].candidates = {{"gptq:b=3,g=128", 3.125, 0, 0.2}};
    s.constraints.tied = {{"a", "b"}};
    expect_error([&] { AllocationProblem{s}; }, {"tied group ['a', 'b'] has no candidate common"});
    s = three_layers();
    s.constraints.tied = {{"a", "b", "c"}};
    s.constraints.pins = {{"a", "rtn:b=2,g=64"}, {"b", "rtn:b=4,g=64"}};
    expect_error([&] { AllocationProblem{s}; },
                 {"tied group ['a', 'b', 'c']: layer 'a' is pinned to 'rtn:b=2,g=64' but layer 'b' to 'rtn:b=4,g=64'"});
    s = three_layers();
    s.constraints.tied = {{"a", "c"}};
    s.constraints.pins = {{"a", "rtn:b=8,g=64"}};
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a' is pinned to 'rtn:b=8,g=64', which layer 'c' does not have"});
    s = three_layers();
    s.constraints.tied = {{"a", "zz"}};
    expect_error([&] { AllocationProblem{s}; }, {"tied group ['a', 'zz'] names unknown layer 'zz'"});
    s = three_layers();
    s.constraints.tied = {{"a", "c"}};
    s.constraints.excluded_kinds = {"lm_head"};
    expect_error([&] { AllocationProblem{s}; }, {"ties layer 'c', whose kind 'lm_head' is excluded, to quantized layer 'a'"});
    // Groups that share a layer merge: a-b and b-c is one group, and c lacks b's pinned setting.
    s = three_layers();
    s.constraints.tied = {{"a", "b"}, {"b", "c"}};
    s.constraints.pins = {{"b", "rtn:b=8,g=64"}};
    expect_error([&] { AllocationProblem{s}; }, {"tied group ['a', 'b', 'c']", "which layer 'c' does not have"});
}

TEST(AllocationErrors, MalformedLayers) {
    auto s = three_layers();
    s.layers[1].name = "a";
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a' is listed twice"});
    s = three_layers();
    s.layers[0].weights = 0;
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a' has 0 weights"});
    s = three_layers();
    s.layers[2].candidates.clear();
    expect_error([&] { AllocationProblem{s}; }, {"layer 'c' has no candidates"});
    s.constraints.excluded_kinds = {"lm_head"};  // an excluded layer needs none
    EXPECT_EQ(error_of([&] { AllocationProblem{s}; }), "");
    s = three_layers();
    s.layers[0].candidates[1].cost = NAN;
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a': candidate 'rtn:b=4,g=64' has cost nan"});
    s = three_layers();
    s.layers[0].candidates[1].spec = "rtn:b=2,g=64";
    expect_error([&] { AllocationProblem{s}; }, {"layer 'a': candidate 'rtn:b=2,g=64' is listed twice"});
    s = three_layers();
    s.layers[0].candidates[1].bits_per_weight = -1;
    expect_error([&] { AllocationProblem{s}; }, {"candidate 'rtn:b=4,g=64' has bits_per_weight -1"});
    expect_error([&] { AllocationProblem{AllocationSpec{}}; }, {"the problem has no layers"});
}
