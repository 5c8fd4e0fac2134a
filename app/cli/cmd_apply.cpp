// quench-cli apply MODEL --allocation FILE.json|FILE.h5[:RUN] --calib FILE --eval FILE [--out FILE.h5]: quantizes every layer
// of an allocation (quench-cli allocate --save) with its own setting, prints the per-layer table, the measured
// bits against the allocated ones, and the measured KL and perplexity against the predicted KL.
#include <iostream>
#include <set>
#include <nlohmann/json.hpp>

#include "alloc/allocation_json.h"
#include "io/model_loading.h"
#include "jobs/allocation_sweep.h"
#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "commands.h"
#include "common/error.h"
#include "common/json_file.h"
#include "jobs/alloc_records.h"
#include "io/report_json.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "run_recording.h"
#include "jobs/model_quantizer.h"
#include "jobs/recorded_jobs.h"

namespace quench::cli {
namespace {

struct ApplyOpts {
    std::string model, allocation, calib, eval, out, calib_inputs = "quantized";
    int64_t calib_tokens = 16384, eval_tokens = 0, ctx = 0;
    uint64_t seed = 0;
    bool no_tensors = false;
};

// An allocation from `quench-cli allocate --save FILE.json` or an allocate run FILE.h5[:RUN].
Allocation load_allocation(const std::string& ref) {
    if (is_run_ref(ref)) return read_allocation(read_run_ref(ref, "allocate"));
    const nlohmann::json j = read_json_file(ref);
    if (!j.is_object() || !j.contains("allocation"))
        throw Error(ref + ": allocation: missing (expected a file from quench-cli allocate --save)");
    try {
        return j["allocation"].get<Allocation>();
    } catch (const quench::Error& e) {
        throw Error(ref + ": " + e.what());
    } catch (const nlohmann::json::exception& e) {
        throw Error(ref + ": allocation: " + e.what());
    }
}

// Total stored bits of the quantized tensors, shared parts counted once (as QuantizeResult does).
int64_t measured_bits(const QuantizeResult& r) {
    int64_t bits = 0;
    std::set<std::string> shared_seen;
    for (const auto& [layer, q] : r.tensors)
        for (const auto& p : q.parts) {
            if (p.shared && !shared_seen.insert(q.spec.to_string() + "/" + p.name).second) continue;
            bits += p.bits;
        }
    return bits;
}

void apply(const ApplyOpts& o, const GlobalOptions& g, ProgressSink& progress, RunWriter* run) {
    const Allocation a = load_allocation(o.allocation);
    auto model = load_model(o.model, &progress);
    auto tok = load_tokenizer(o.model);
    std::map<std::string, const LayerChoice*> choice;
    int64_t allocated_bits = 0, allocated_weights = 0;
    for (const auto& l : a.layers) {
        if (l.excluded) continue;  // stays at full precision
        choice[l.name] = &l;
        allocated_bits += l.bits;
        allocated_weights += l.weights;
    }
    QuantizeJobOptions qo;
    qo.calib = {o.calib, o.calib_tokens};
    qo.calib_inputs = calib_inputs_from_name(o.calib_inputs);
    qo.eval = o.eval;
    qo.eval_tokens = o.eval_tokens;
    qo.ctx = o.ctx;
    qo.seed = o.seed;
    qo.with_tensors = !o.no_tensors;
    const QuantizeJobResult job = apply_job(*model, *tok, a, o.allocation, qo, &progress, run);
    const QuantizeResult& result = job.result;
    const int64_t bits = measured_bits(result);
    const double bpw = double(bits) / double(allocated_weights);
    const KlReport& kl = job.kl;
    const bool have_eval = job.has_kl;
    if (g.json) {
        nlohmann::json j = {{"model", o.model},
                            {"allocation", o.allocation},
                            {"measured_bits", bits},
                            {"allocated_bits", allocated_bits},
                            {"weights", allocated_weights},
                            {"total_bpw", bpw},
                            {"allocated_bpw", double(allocated_bits) / double(allocated_weights)},
                            {"predicted_kl", a.total_cost},
                            {"layers", nlohmann::json::array()}};
        for (const auto& r : result.layers) {
            const auto* c = choice.at(r.name);
            j["layers"].push_back({{"layer", r.name},
                                   {"spec", r.spec.to_string()},
                                   {"total_bpw", r.metrics.total_bits_per_weight},
                                   {"allocated_bpw", c->bits_per_weight},
                                   {"output_rel_error", r.metrics.output_rel_error},
                                   {"predicted_kl", c->cost}});
        }
        if (have_eval) j["kl"] = to_json(kl);
        std::cout << j.dump(2) << "\n";
        return;
    }
    Table t({"layer", "spec", "total bpw", "allocated bpw", "out rel err", "predicted KL"});
    for (const auto& r : result.layers) {
        const auto* c = choice.at(r.name);
        t.add({r.name, r.spec.to_string(), fmt_num(r.metrics.total_bits_per_weight, 4), fmt_num(c->bits_per_weight, 4),
               r.metrics.output_rel_error < 0 ? "-" : fmt_num(r.metrics.output_rel_error, 5), fmt_num(c->cost, 6)});
    }
    std::cout << result.layers.size() << " layers, " << bits << " bits measured vs " << allocated_bits
              << " allocated: " << fmt_num(bpw, 4) << " bits per weight\n\n"
              << t.render();
    if (have_eval) {
        std::cout << "\npredicted KL (sum of per-layer costs): " << fmt_num(a.total_cost, 6) << " nats; measured "
                  << fmt_num(kl.kl_mean, 6) << " +- " << fmt_num(kl.kl_stderr, 6) << "\n\n";
        print_kl_table(kl, o.model + " (full precision)", "allocation " + o.allocation);
    }
}

}  // namespace

Command add_apply_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("apply", "Quantize each layer with its allocated setting; measured KL vs predicted");
    auto o = std::make_shared<ApplyOpts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    sub->add_option("--allocation", o->allocation, "Allocation: JSON from quench-cli allocate --save, or an allocate run FILE.h5[:RUN]")->required();
    sub->add_option("--calib", o->calib, "Calibration text (GPTQ Hessians, activation scales, output error)");
    sub->add_option("--calib-tokens", o->calib_tokens, "Calibration tokens to use")->check(CLI::PositiveNumber);
    sub->add_option("--calib-inputs", o->calib_inputs,
                    "Inputs a block's layers are calibrated on: 'quantized' (the outputs of the quantized blocks "
                    "before it, GPTQ's sequential order; default) or 'fp' (the full-precision model's)")
        ->check(CLI::IsMember({"quantized", "fp"}));
    sub->add_option("--eval", o->eval, "Held-out evaluation text for KL and perplexity");
    sub->add_option("--eval-tokens", o->eval_tokens, "Evaluate only the first N tokens")->check(CLI::NonNegativeNumber);
    sub->add_option("--ctx", o->ctx, "Window length for calibration and evaluation")->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", o->seed, "Seed for every random choice");
    sub->add_option("--out", o->out, "Project file (.h5) to record the run in; created when absent");
    sub->add_flag("--no-tensors", o->no_tensors, "With --out: record metrics only, not the quantized tensors");
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, kApplyRun, o->seed, g, [&](RunWriter* run) { apply(*o, g, progress, run); });
            }};
}

}  // namespace quench::cli
