// quench-cli quantize MODEL --codec SPEC [--layers GLOB | --layers-regex RE] --calib FILE --eval FILE
// [--out FILE.h5]: quantizes the selected layers, prints the per-layer table and the model-level KL and
// perplexity, and records the run (provenance, tables, the quantized tensors) in a project file.
#include <algorithm>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "commands.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "io/report_json.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "run_recording.h"
#include "quant/codec_registry.h"
#include "jobs/model_quantizer.h"
#include "jobs/recorded_jobs.h"

namespace quench::cli {
namespace {

nlohmann::json layer_json(const LayerResult& r) {
    const auto& m = r.metrics;
    return {{"layer", r.name},          {"spec", r.spec.to_string()},
            {"weight_mse", m.weight_mse}, {"rel_fro_error", m.rel_fro_error},
            {"sqnr_db", m.sqnr_db},     {"output_rel_error", m.output_rel_error},
            {"code_bpw", m.code_bits_per_weight}, {"total_bpw", m.total_bits_per_weight},
            {"seconds", m.seconds}, {"transform", r.transform}};
}

struct QuantizeOpts {
    std::string model, codec, layers = "model.layers.*", layers_regex, calib, eval, out, calib_inputs = "quantized";
    int64_t calib_tokens = 16384, eval_tokens = 0, ctx = 0;
    uint64_t seed = 0;
    bool no_tensors = false;
};

void quantize(const QuantizeOpts& o, const CodecSpec& spec, const GlobalOptions& g, ProgressSink& progress,
              RunWriter* run) {
    auto model = load_model(o.model, &progress);
    auto tok = load_tokenizer(o.model);
    const auto layers = o.layers_regex.empty() ? model->layers().select_glob(o.layers)
                                                : model->layers().select_regex(o.layers_regex);
    QuantizeJobOptions qo;
    qo.calib = {o.calib, o.calib_tokens};
    qo.calib_inputs = calib_inputs_from_name(o.calib_inputs);
    qo.eval = o.eval;
    qo.eval_tokens = o.eval_tokens;
    qo.ctx = o.ctx;
    qo.seed = o.seed;
    qo.with_tensors = !o.no_tensors;
    const QuantizeJobResult job = quantize_job(*model, *tok, uniform_plan(layers, spec), qo, &progress, run);
    const QuantizeResult& result = job.result;
    const KlReport& kl = job.kl;

    nlohmann::json j = {{"model", o.model}, {"codec", spec.to_string()}, {"seconds", result.seconds},
                        {"total_bpw", result.total_bits_per_weight()}, {"layers", nlohmann::json::array()}};
    for (const auto& r : result.layers) j["layers"].push_back(layer_json(r));
    if (job.has_kl) j["kl"] = to_json(kl);
    if (g.json) {
        std::cout << j.dump(2) << "\n";
        return;
    }
    // The transform column only when the codec has one: its block follows each layer's width.
    const bool transforms = std::any_of(result.layers.begin(), result.layers.end(),
                                        [](const LayerResult& r) { return !r.transform.empty(); });
    std::vector<std::string> head = {"layer", "shape", "code bpw", "total bpw", "SQNR dB", "rel err", "out rel err", "time s"};
    if (transforms) head.push_back("transform");
    Table t(head);
    for (const auto& r : result.layers) {
        const auto& info = model->layers().at(r.layer);
        const auto& m = r.metrics;
        std::vector<std::string> row = {r.name, fmt_shape(info.out_features, info.in_features), fmt_num(m.code_bits_per_weight, 3),
               fmt_num(m.total_bits_per_weight, 3), fmt_num(m.sqnr_db, 2), fmt_num(m.rel_fro_error, 4),
               m.output_rel_error < 0 ? "-" : fmt_num(m.output_rel_error, 5), fmt_num(m.seconds, 3)};
        if (transforms) row.push_back(r.transform);
        t.add(row);
    }
    std::cout << "codec " << spec.to_string() << ", " << result.layers.size() << " layers, "
              << fmt_num(result.total_bits_per_weight(), 3) << " total bits per weight\n\n"
              << t.render();
    if (!o.eval.empty()) {
        std::cout << "\n";
        print_kl_table(kl, o.model + " (full precision)", spec.to_string());
    }
}

}  // namespace

Command add_quantize_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("quantize", "Quantize selected layers and report per-layer error, KL and perplexity");
    auto o = std::make_shared<QuantizeOpts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    sub->add_option("--codec", o->codec, "Codec spec, e.g. rtn:b=4,g=128 (codecs: " + codec_names() + ")")->required();
    sub->add_option("--layers", o->layers, "Layer globs, comma-separated (default: every block's linear layers)");
    sub->add_option("--layers-regex", o->layers_regex, "Select layers by regex instead of --layers");
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
                const CodecSpec spec = CodecSpec::parse(o->codec);
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, kQuantizeRun, o->seed, g, [&](RunWriter* run) { quantize(*o, spec, g, progress, run); });
            }};
}

}  // namespace quench::cli
