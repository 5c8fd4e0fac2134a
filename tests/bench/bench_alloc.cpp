// Bit-allocation speed for the GUI's budget slider: 1,000 layers x 16 candidate settings (Llama-2-7B layer
// shapes, 2 to 8.25 bits per weight in LiftQuant/RTN-like steps, costs falling ~4x per bit with noise and some
// dominated settings). Goal: a Lagrangian re-solve under 20 ms; the exact solver's time is reported too.
// Each iteration solves at the next of 64 budgets spread over the slider's range, as a slider drag would.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "alloc/allocation_problem.h"

using namespace quench;

namespace {

const std::vector<std::pair<std::string, double>> kSettings = {
    {"paretoq:b=2", 2.0},          {"liftquant:D=17,d=8", 2.125}, {"rtn:b=2,g=64", 2.25},
    {"liftquant:D=19,d=8", 2.375}, {"liftquant:D=20,d=8", 2.5},   {"liftquant:D=22,d=8", 2.75},
    {"gptq:b=3,g=128", 3.125},     {"rtn:b=3,g=64", 3.25},        {"liftquant:D=28,d=8", 3.5},
    {"gptq:b=4,g=128", 4.125},     {"rtn:b=4,g=64", 4.25},        {"rtn:b=5,g=64", 5.25},
    {"rtn:b=6,g=64", 6.25},        {"rtn:b=8,g=128", 8.125},      {"rtn:b=8,g=64", 8.25},
    {"qamw:k=11,block=128", 5.5}};

// tied: q/k/v and gate/up of each block are tied groups (the usual fused-kernel constraint). flat: costs fall
// linearly with bits instead (every hull nearly a straight line): the exact solver's hard case, as the
// Lagrangian bound then leaves many layers undecided.
AllocationSpec make_spec(int layers, int candidates, bool tied, bool flat, uint64_t seed) {
    static const char* kinds[] = {"q", "k", "v", "o", "gate", "up", "down"};
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    AllocationSpec s;
    std::vector<double> scale(7);
    for (int l = 0; l < layers; ++l) {
        const int k = l % 7;
        if (k == 0)  // a block's layers share how sensitive the block is
            for (auto& x : scale) x = std::exp(2.0 * u(rng)) * 1e-3;
        AllocLayer L;
        L.name = "model.layers." + std::to_string(l / 7) + "." + kinds[k];
        L.kind = kinds[k];
        L.block = l / 7;
        L.weights = k < 4 ? 4096LL * 4096 : 4096LL * 11008;
        for (int c = 0; c < candidates; ++c) {
            const auto& [spec, bpw] = kSettings[c];
            const double cost = flat       ? scale[k] * (9 - bpw) * (1 + 0.01 * u(rng))
                                : u(rng) < 0.1 ? scale[k] * 2 * u(rng)
                                               : scale[k] * std::exp2(-2 * (bpw - 2)) * (0.8 + 0.4 * u(rng));
            L.candidates.push_back({spec, bpw, 0, cost});
        }
        s.layers.push_back(L);
    }
    if (tied) {
        s.constraints.tied = tied_groups_per_block(s.layers, {"q", "k", "v"});
        const auto gu = tied_groups_per_block(s.layers, {"gate", "up"});
        s.constraints.tied.insert(s.constraints.tied.end(), gu.begin(), gu.end());
    }
    return s;
}

std::vector<Budget> slider(const AllocationProblem& p) {
    std::vector<Budget> out;
    const double lo = p.min_bits_per_weight(), hi = p.max_useful_bits_per_weight();
    for (int i = 0; i < 64; ++i) out.push_back(Budget::bits_per_weight(lo + (hi - lo) * ((i * 37) % 64 + 0.5) / 64));
    return out;
}

void BM_Build(benchmark::State& state) {
    const auto spec = make_spec(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), state.range(2) & 1, state.range(2) & 2, 1);
    for (auto _ : state) benchmark::DoNotOptimize(AllocationProblem(spec));
    state.SetLabel("precompute (hulls, sorted steps, DP step)");
}

template <class Solve>
void run_slider(benchmark::State& state, Solve solve) {
    const AllocationProblem p(make_spec(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), state.range(2) & 1, state.range(2) & 2, 1));
    const auto budgets = slider(p);
    size_t i = 0, proven = 0, solves = 0;
    double gap = 0;
    for (auto _ : state) {
        const Allocation a = solve(p, budgets[i++ % budgets.size()]);
        proven += a.proven_optimal, ++solves;
        gap = std::max(gap, a.total_cost > 0 ? a.gap / a.total_cost : 0.0);
        benchmark::DoNotOptimize(a.total_cost);
    }
    state.counters["proven_frac"] = double(proven) / double(solves);
    state.counters["max_rel_gap"] = gap;
}

void BM_Lagrangian(benchmark::State& state) {
    run_slider(state, [](const AllocationProblem& p, const Budget& b) { return p.solve_lagrangian(b); });
}
void BM_LagrangianNoFill(benchmark::State& state) {
    run_slider(state, [](const AllocationProblem& p, const Budget& b) { return p.solve_lagrangian(b, {false}); });
}
void BM_Exact(benchmark::State& state) {
    run_slider(state, [](const AllocationProblem& p, const Budget& b) { return p.solve_exact(b); });
}

// Args: layers, candidates, flags (1: tied q/k/v and gate/up, 2: flat costs).
#define ALLOC_ARGS \
    ->Args({1000, 16, 0})->Args({1000, 16, 1})->Args({1000, 16, 2})->Args({224, 16, 0})->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_Build) ALLOC_ARGS;
BENCHMARK(BM_Lagrangian) ALLOC_ARGS;
BENCHMARK(BM_LagrangianNoFill) ALLOC_ARGS;
BENCHMARK(BM_Exact) ALLOC_ARGS;

}  // namespace

BENCHMARK_MAIN();
