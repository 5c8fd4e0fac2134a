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
#include "io/report_json.h"
#include "io/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "run_recording.h"
#include "quant/codec_registry.h"
#include "quant/model_quantizer.h"

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

std::string codec_list() {
    std::string s;
    for (const auto& t : codec_table()) s += (s.empty() ? "" : ", ") + std::string(t.name);
    return s;
}

struct QuantizeOpts {
    std::string model, codec, layers = "model.layers.*", layers_regex, calib, eval, out;
    int64_t calib_tokens = 16384, eval_tokens = 0, ctx = 0;
    uint64_t seed = 0;
    bool no_tensors = false;
};

void quantize(const QuantizeOpts& o, const CodecSpec& spec, const GlobalOptions& g, ProgressSink& progress,
              RunWriter* run) {
    auto model = LlamaModel::load(o.model, &progress);
    if (run) {
        run->set_attrs({{"codec", spec.to_string()}, {"layers", o.layers_regex.empty() ? o.layers : o.layers_regex}});
        write_model_provenance(*run, model_provenance(*model, &progress));
    }
    auto tok = load_tokenizer(o.model);
    const auto layers = o.layers_regex.empty() ? model->layers().select_glob(o.layers)
                                                : model->layers().select_regex(o.layers_regex);
    std::vector<int32_t> calib;
    if (!o.calib.empty()) calib = tokenize_text_file(*tok, o.calib, true, o.calib_tokens);
    QuantizeOptions qo;
    qo.seed = o.seed;
    qo.capture.ctx = o.ctx;
    auto result = quantize_model_layers(*model, uniform_plan(layers, spec), calib, qo, &progress);

    nlohmann::json j = {{"model", o.model}, {"codec", spec.to_string()}, {"seconds", result.seconds},
                        {"total_bpw", result.total_bits_per_weight()}, {"layers", nlohmann::json::array()}};
    for (const auto& r : result.layers) j["layers"].push_back(layer_json(r));
    KlReport kl;
    if (!o.eval.empty()) {
        EvalOptions eo;
        eo.ctx = o.ctx;
        eo.max_tokens = o.eval_tokens;
        const auto eval_tokens = tokenize_text_file(*tok, o.eval, true);
        kl = evaluate_kl({model.get(), LlamaModel::Weights::Original}, {model.get()}, eval_tokens, eo,
                         tok->bos_id(), &progress);
        j["kl"] = to_json(kl);
    }
    if (run) {
        std::vector<DataProvenance> data;
        if (!o.calib.empty()) data.push_back(data_provenance("calib", o.calib, static_cast<int64_t>(calib.size())));
        if (!o.eval.empty())
            data.push_back(data_provenance("eval", o.eval, kl.protocol.text_tokens, kl.protocol.describe()));
        write_data_provenance(*run, data);
        write_quantize_result(*run, result, !o.no_tensors);
        run->set_attr("total_bpw", result.total_bits_per_weight());
        if (!o.eval.empty()) write_kl_report(*run, kl);
    }
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
    sub->add_option("--codec", o->codec, "Codec spec, e.g. rtn:b=4,g=128 (codecs: " + codec_list() + ")")->required();
    sub->add_option("--layers", o->layers, "Layer globs, comma-separated (default: every block's linear layers)");
    sub->add_option("--layers-regex", o->layers_regex, "Select layers by regex instead of --layers");
    sub->add_option("--calib", o->calib, "Calibration text (GPTQ Hessians, activation scales, output error)");
    sub->add_option("--calib-tokens", o->calib_tokens, "Calibration tokens to use")->check(CLI::PositiveNumber);
    sub->add_option("--eval", o->eval, "Held-out evaluation text for KL and perplexity");
    sub->add_option("--eval-tokens", o->eval_tokens, "Evaluate only the first N tokens")->check(CLI::NonNegativeNumber);
    sub->add_option("--ctx", o->ctx, "Window length for calibration and evaluation")->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", o->seed, "Seed for every random choice");
    sub->add_option("--out", o->out, "Project file (.h5) to record the run in; created when absent");
    sub->add_flag("--no-tensors", o->no_tensors, "With --out: record metrics only, not the quantized tensors");
    return {sub, [o, &g] {
                const CodecSpec spec = CodecSpec::parse(o->codec);
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, "quantize", o->seed, g, [&](RunWriter* run) { quantize(*o, spec, g, progress, run); });
            }};
}

}  // namespace quench::cli
