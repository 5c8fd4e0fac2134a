// quench-cli sweep MODEL --measurements FILE.json|FILE.h5[:RUN] --budgets 2,2.5,3 [--uniform 'SPEC;SPEC'|all]
// --calib FILE --eval FILE [constraints as in allocate] [--out FILE.h5]: for each budget, allocates, applies the
// allocation and measures KL and perplexity on held-out text; optionally the same for uniform settings. Prints
// predicted vs measured KL per entry and their Spearman correlation over the sweep.
#include <cmath>
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "alloc/allocation_problem.h"
#include "alloc_options.h"
#include "io/model_loading.h"
#include "jobs/allocation_sweep.h"
#include "analysis/text_data.h"
#include "commands.h"
#include "common/error.h"
#include "io/report_json.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "run_recording.h"

namespace quench::cli {
namespace {

struct SweepOpts {
    AllocProblemOpts problem;
    std::string model, budgets, uniform, calib, eval, out;
    int64_t calib_tokens = 16384, eval_tokens = 0, ctx = 0;
    uint64_t seed = 0;
    bool exact = false;
};

std::vector<double> parse_budgets(const std::string& text) {
    std::vector<double> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        const Budget b = parse_budget(item.find("bpw") == std::string::npos ? item + "bpw" : item, "--budgets");
        if (b.unit != Budget::Unit::BitsPerWeight) throw Error("--budgets: '" + item + "' is not bits per weight");
        out.push_back(b.value);
    }
    if (out.empty()) throw Error("--budgets: give bits per weight separated by commas: 2,2.5,3");
    return out;
}

// "all": every setting measured for every layer of the problem.
std::vector<std::string> uniform_specs(const std::string& text, const AllocationSpec& spec) {
    if (text.empty()) return {};
    if (text != "all") return parse_candidate_list(text);
    std::vector<std::string> out;
    for (const auto& c : spec.layers.front().candidates) {
        bool everywhere = true;
        for (const auto& l : spec.layers) {
            bool found = false;
            for (const auto& d : l.candidates) found = found || d.spec == c.spec;
            everywhere = everywhere && found;
        }
        if (everywhere) out.push_back(c.spec);
    }
    return out;
}

void write_sweep(RunWriter& run, const AllocationSweep& s) {
    quench::Table t;
    std::vector<std::string> label;
    std::vector<int64_t> uniform;
    std::vector<double> budget, bpw, predicted, kl, kl_se, ppl, top1;
    for (const auto& e : s.entries) {
        label.push_back(e.label), uniform.push_back(e.uniform ? 1 : 0), budget.push_back(e.budget_bits_per_weight);
        bpw.push_back(e.bits_per_weight), predicted.push_back(e.predicted_kl), kl.push_back(e.kl.kl_mean);
        kl_se.push_back(e.kl.kl_stderr), ppl.push_back(e.kl.ppl_test), top1.push_back(e.kl.top1_agreement);
    }
    t.add("label", label).add("uniform", uniform).add("budget_bits_per_weight", budget, "bits");
    t.add("total_bits_per_weight", bpw, "bits").add("predicted_kl", predicted, "nats").add("kl_mean", kl, "nats");
    t.add("kl_stderr", kl_se, "nats").add("ppl", ppl).add("top1_agreement", top1);
    if (std::isfinite(s.spearman)) t.attrs["spearman"] = s.spearman;
    t.attrs["spearman_points"] = s.spearman_points;
    run.write_table("sweep", t);
}

void sweep(const SweepOpts& o, const GlobalOptions& g, ProgressSink& progress, RunWriter* run) {
    const AllocationProblem problem(o.problem.build());
    const auto budgets = parse_budgets(o.budgets);
    const auto uniform = uniform_specs(o.uniform, problem.spec());
    auto model = load_model(o.model, &progress);
    auto tok = load_tokenizer(o.model);
    std::vector<int32_t> calib;
    if (!o.calib.empty()) calib = tokenize_text_file(*tok, o.calib, true, o.calib_tokens);
    const auto eval_tokens = tokenize_text_file(*tok, o.eval, true);
    SweepOptions so;
    so.quantize.seed = o.seed;
    so.quantize.capture.ctx = o.ctx;
    so.eval.ctx = o.ctx;
    so.eval.max_tokens = o.eval_tokens;
    so.solver = o.exact ? AllocSolver::Exact : AllocSolver::Lagrangian;
    const AllocationSweep s = sweep_allocations(*model, problem, budgets, uniform, calib, eval_tokens, tok->bos_id(), so, &progress);
    if (run) {
        write_model_provenance(*run, model_provenance(*model, &progress));
        std::vector<DataProvenance> data;
        if (!o.calib.empty()) data.push_back(data_provenance("calib", o.calib, static_cast<int64_t>(calib.size())));
        data.push_back(data_provenance("eval", o.eval, s.entries.front().kl.protocol.text_tokens,
                                       s.entries.front().kl.protocol.describe()));
        write_data_provenance(*run, data);
        write_sweep(*run, s);
        run->set_attrs({{"measurements", o.problem.measurements}, {"budgets", o.budgets}});
    }
    if (g.json) {
        nlohmann::json j = {{"model", o.model}, {"measurements", o.problem.measurements}, {"entries", nlohmann::json::array()}};
        for (const auto& e : s.entries) {
            nlohmann::json je = {{"label", e.label}, {"uniform", e.uniform}, {"total_bpw", e.bits_per_weight},
                                 {"kl", to_json(e.kl)}};
            if (!e.uniform) je["budget_bpw"] = e.budget_bits_per_weight;
            if (std::isfinite(e.predicted_kl)) je["predicted_kl"] = e.predicted_kl;
            j["entries"].push_back(je);
        }
        if (std::isfinite(s.spearman)) j["spearman"] = s.spearman;
        j["spearman_points"] = s.spearman_points;
        std::cout << j.dump(2) << "\n";
        return;
    }
    Table t({"entry", "total bpw", "predicted KL", "measured KL", "+-", "PPL", "top-1 agree"});
    for (const auto& e : s.entries)
        t.add({e.label, fmt_num(e.bits_per_weight, 4), std::isfinite(e.predicted_kl) ? fmt_num(e.predicted_kl, 5) : "-",
               fmt_num(e.kl.kl_mean, 5), fmt_num(e.kl.kl_stderr, 5), fmt_num(e.kl.ppl_test, 3),
               fmt_num(e.kl.top1_agreement, 4)});
    std::cout << t.render() << "\nfull-precision perplexity " << fmt_num(s.entries.front().kl.ppl_ref, 3)
              << "; predicted vs measured KL: Spearman ";
    if (std::isfinite(s.spearman))
        std::cout << fmt_num(s.spearman, 3) << " over " << s.spearman_points << " entries\n";
    else
        std::cout << "needs 3 entries with a prediction\n";
}

}  // namespace

Command add_sweep_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("sweep", "Apply allocations at several budgets (and uniform settings): measured vs predicted KL");
    auto o = std::make_shared<SweepOpts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    o->problem.add_to(sub);
    sub->add_option("--budgets", o->budgets, "Bits per weight, comma-separated: 2,2.5,3")->required();
    sub->add_option("--uniform", o->uniform, "Uniform settings to compare: 'SPEC;SPEC' or all (every setting measured for every layer)");
    sub->add_flag("--exact", o->exact, "Exact knapsack solver instead of the Lagrangian one");
    sub->add_option("--calib", o->calib, "Calibration text (GPTQ Hessians, activation scales)");
    sub->add_option("--calib-tokens", o->calib_tokens, "Calibration tokens to use")->check(CLI::PositiveNumber);
    sub->add_option("--eval", o->eval, "Held-out evaluation text for KL and perplexity")->required();
    sub->add_option("--eval-tokens", o->eval_tokens, "Evaluate only the first N tokens")->check(CLI::NonNegativeNumber);
    sub->add_option("--ctx", o->ctx, "Window length for calibration and evaluation")->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", o->seed, "Seed for every random choice");
    sub->add_option("--out", o->out, "Project file (.h5) to record the sweep in; created when absent");
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, "sweep", o->seed, g, [&](RunWriter* run) { sweep(*o, g, progress, run); });
            }};
}

}  // namespace quench::cli
