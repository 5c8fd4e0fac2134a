#include "jobs/allocation_sweep.h"

#include <cmath>

#include "jobs/sensitivity.h"
#include "common/error.h"
#include "common/progress.h"
#include "model/llama_model.h"

namespace quench {
namespace {

// Puts the full-precision weights back however the entry ends.
struct RestoreAll {
    LlamaModel& model;
    ~RestoreAll() { model.restore_all(); }
};

std::string fmt_bpw(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

}  // namespace

std::vector<LayerPlan> allocation_plan(const LlamaModel& model, const Allocation& a, const std::string& source) {
    std::vector<LayerPlan> plan;
    for (const auto& l : a.layers) {
        const auto idx = model.layers().index_of(l.name);
        if (!idx) throw Error(source + ": layer '" + l.name + "': not a layer of " + model.dir());
        const auto& info = model.layers().at(*idx);
        if (info.params() != l.weights)
            throw Error(source + ": layer '" + l.name + "': weights " + std::to_string(l.weights) + ", the model has " +
                        std::to_string(info.params()));
        if (!l.excluded) plan.push_back({*idx, CodecSpec::parse(l.spec)});
    }
    if (plan.empty()) throw Error(source + ": allocation: no quantized layer");
    return plan;
}

AllocationSweep sweep_allocations(LlamaModel& model, const AllocationProblem& problem, const std::vector<double>& budgets_bpw,
                                  const std::vector<std::string>& uniform_specs, const std::vector<int32_t>& calib_tokens,
                                  const std::vector<int32_t>& eval_tokens, int32_t bos_id, const SweepOptions& options,
                                  ProgressSink* progress) {
    ProgressSink& prog = progress ? *progress : null_progress();
    const AllocationSpec& spec = problem.spec();
    struct Job {
        SweepEntry entry;
        std::vector<LayerPlan> plan;
        int64_t excluded_weights = 0;
    };
    std::vector<Job> jobs;
    for (double b : budgets_bpw) {
        if (!(b >= problem.min_bits_per_weight()))
            throw Error("budget " + fmt_bpw(b) + " bpw: below the least the problem can take (" +
                        fmt_bpw(problem.min_bits_per_weight()) + " bpw)");
        const Allocation a = problem.solve(Budget::bits_per_weight(b), options.solver);
        Job j;
        j.entry.label = "allocated " + fmt_bpw(b) + " bpw";
        j.entry.budget_bits_per_weight = b;
        j.entry.predicted_kl = a.total_cost;
        j.plan = allocation_plan(model, a, j.entry.label);
        for (const auto& l : a.layers)
            if (l.excluded) j.excluded_weights += l.weights;
        jobs.push_back(std::move(j));
    }
    for (const auto& u : uniform_specs) {
        Job j;
        j.entry.label = CodecSpec::parse(u).to_string();
        j.entry.uniform = true;
        double cost = 0;
        for (const auto& l : spec.layers) {
            const AllocCandidate* c = nullptr;
            for (const auto& cand : l.candidates)
                if (cand.spec == j.entry.label) c = &cand;
            if (!c) throw Error("uniform " + j.entry.label + ": not measured for layer '" + l.name + "'");
            cost += c->cost;
            const auto idx = model.layers().index_of(l.name);
            if (!idx) throw Error("uniform " + j.entry.label + ": layer '" + l.name + "': not a layer of " + model.dir());
            j.plan.push_back({*idx, CodecSpec::parse(j.entry.label)});
        }
        j.entry.predicted_kl = cost;
        jobs.push_back(std::move(j));
    }

    AllocationSweep out;
    std::vector<double> predicted, measured;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        auto& j = jobs[i];
        const double f0 = double(i) / double(jobs.size()), f1 = double(i + 1) / double(jobs.size());
        RestoreAll restore{model};
        SubProgress quant(prog, f0, (f0 + f1) / 2);
        const QuantizeResult r = quantize_model_layers(model, j.plan, calib_tokens, options.quantize, &quant);
        int64_t quantized_weights = 0;
        for (const auto& p : j.plan) quantized_weights += model.layers().at(p.layer).params();
        const double bits = r.total_bits_per_weight() * double(quantized_weights) +
                            spec.constraints.excluded_bits_per_weight * double(j.excluded_weights);
        j.entry.bits_per_weight = bits / double(quantized_weights + j.excluded_weights);
        SubProgress eval(prog, (f0 + f1) / 2, f1);
        j.entry.kl = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, eval_tokens, options.eval, bos_id, &eval);
        if (std::isfinite(j.entry.predicted_kl)) {
            predicted.push_back(j.entry.predicted_kl);
            measured.push_back(j.entry.kl.kl_mean);
        }
        out.entries.push_back(std::move(j.entry));
    }
    out.spearman_points = static_cast<int64_t>(predicted.size());
    if (predicted.size() >= 3) out.spearman = spearman(predicted, measured);
    prog.report(1.0, "sweep done");
    return out;
}

}  // namespace quench
