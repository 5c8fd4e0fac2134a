// quench-cli eval MODEL --text FILE [--ref REF]: perplexity, or KL divergence against a reference model.
// quench-cli eval FILE.h5[:RUN] --text FILE [--out FILE.h5]: KL of a quantize run's model against the same model at
// full precision (the workbench's Evaluate KL), recorded as an eval run with --out.
// quench-cli eval --packed DIR --text FILE [--int8-activations]: perplexity of a packed checkpoint run through the packed
// kernels, next to the same checkpoint dequantized and run dense in fp32, measured in the same process.
// quench-cli generate MODEL --prompt TEXT: greedy continuation, a quick sanity check of a model.
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "io/report_json.h"
#include "jobs/alloc_records.h"
#include "jobs/recorded_jobs.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "run_recording.h"
#include "runtime/packed_model.h"

namespace quench::cli {
namespace {

void add_eval_options(CLI::App* sub, EvalOptions& e) {
    sub->add_option("--ctx", e.ctx, "Window length in tokens (default: min(model max, 2048))")->check(CLI::NonNegativeNumber);
    sub->add_option("--stride", e.stride, "Window stride (default: ctx, non-overlapping)")->check(CLI::NonNegativeNumber);
    sub->add_option("--max-tokens", e.max_tokens, "Evaluate only the first N tokens")->check(CLI::NonNegativeNumber);
    sub->add_option("--batch", e.batch, "Windows per forward pass")->check(CLI::PositiveNumber);
    sub->add_flag("--bos-per-window", e.bos_per_window, "Start every window with BOS (llama.cpp style)");
}

// The packed run and the dense run one after the other, never both models in memory at once.
void eval_packed(const std::string& dir, const std::string& text, bool int8, const EvalOptions& eval,
                 const GlobalOptions& g, ProgressSink& progress) {
    auto tok = load_tokenizer(dir);
    const auto tokens = tokenize_text_file(*tok, text, /*add_bos=*/true);
    PerplexityResult packed, dense;
    int layers = 0, int8_layers = 0;
    uint64_t bytes = 0;
    {
        auto pm = PackedModel::load(dir, g.threads, &progress, int8 ? PackedActivations::Int8 : PackedActivations::Fp32);
        layers = pm->packed_layers();
        int8_layers = pm->int8_layers();
        bytes = pm->packed_bytes();
        packed = evaluate_perplexity({&pm->model(), LlamaModel::Weights::Current, &pm->linear()}, tokens, eval,
                                     tok->bos_id(), &progress);
    }
    {
        auto model = load_model(dir, &progress);  // the packed loader dequantizes every weight
        dense = evaluate_perplexity({model.get()}, tokens, eval, tok->bos_id(), &progress);
    }
    const double rel = std::abs(packed.perplexity - dense.perplexity) / dense.perplexity;
    const double speedup = packed.tokens_per_second / dense.tokens_per_second;
    if (g.json) {
        std::cout << nlohmann::json{{"packed", dir},
                                    {"text", text},
                                    {"packed_layers", layers},
                                    {"activations", int8 ? "int8" : "fp32"},
                                    {"int8_layers", int8_layers},
                                    {"packed_bytes", bytes},
                                    {"kernels", to_json(packed)},
                                    {"dense_fp32", to_json(dense)},
                                    {"perplexity_rel_diff", rel},
                                    {"speedup", speedup}}
                         .dump(2)
                  << "\n";
        return;
    }
    Table t({"metric", int8 ? "packed kernels, int8 activations" : "packed kernels", "dense fp32"});
    t.add({"perplexity", fmt_num(packed.perplexity, 5), fmt_num(dense.perplexity, 5)});
    t.add({"mean NLL (nats)", fmt_num(packed.nll_mean, 6), fmt_num(dense.nll_mean, 6)});
    t.add({"throughput (tokens/s)", fmt_num(packed.tokens_per_second, 0), fmt_num(dense.tokens_per_second, 0)});
    t.add({"time (s)", fmt_num(packed.seconds, 2), fmt_num(dense.seconds, 2)});
    std::cout << "checkpoint: " << dir << " (" << layers << " packed layers, " << fmt_bytes(static_cast<double>(bytes))
              << " of parts read by the kernels";
    if (int8) std::cout << "; " << int8_layers << " of the layers with int8 activations";
    std::cout << ")\ntext: " << text << "\nprotocol: " << packed.protocol.describe()
              << "\n"
              << t.render() << "perplexity relative difference: " << fmt::format("{:.2e}", rel)
              << "\nkernels vs dense speed: " << fmt_num(speedup, 3) << "x\n";
}

// A quantize (or apply, QAT) run's model with its quantized layers in, against the same model at full
// precision: the workbench's Evaluate KL.
void eval_run(const std::string& ref, const std::string& text, const std::string& kl_out, const EvalOptions& eval,
              const GlobalOptions& g, ProgressSink& progress, RunWriter* run) {
    const QuantizedRun m = load_quantized_run(ref, &progress);
    auto tok = load_tokenizer(m.model->dir());
    const EvalJobResult r = eval_job(*m.model, *tok, m.current, text, eval, &progress, run);
    if (!kl_out.empty()) write_file_atomic(kl_out, to_json(r.kl, true).dump() + "\n");
    if (g.json) {
        std::cout << nlohmann::json{{"model", m.ref}, {"ref", m.model->dir()}, {"text", text},
                                    {"quantized_layers", m.current.layers.size()}, {"result", to_json(r.kl)}}
                         .dump(2)
                  << "\n";
        return;
    }
    print_kl_table(r.kl, m.model->dir() + " (full precision)", m.ref);
}

}  // namespace

void print_kl_table(const KlReport& r, const std::string& ref, const std::string& test) {
    Table t({"metric", "value"});
    t.add({"reference", ref});
    t.add({"model", test});
    t.add({"KL mean (nats)", fmt_num(r.kl_mean, 6) + " +- " + fmt_num(r.kl_stderr, 6)});
    t.add({"KL median", fmt_num(r.kl_median, 6)});
    t.add({"KL p90 / p99 / p99.9", fmt_num(r.kl_p90, 5) + " / " + fmt_num(r.kl_p99, 5) + " / " + fmt_num(r.kl_p999, 5)});
    t.add({"KL max", fmt_num(r.kl_max, 5)});
    t.add({"top-1 agreement", fmt_num(100.0 * r.top1_agreement, 2) + " %"});
    t.add({"RMS delta p", fmt_num(100.0 * r.rms_delta_p, 3) + " %"});
    t.add({"perplexity ref / model", fmt_num(r.ppl_ref, 4) + " / " + fmt_num(r.ppl_test, 4)});
    t.add({"perplexity ratio", fmt_num(r.ppl_ratio, 5)});
    t.add({"protocol", r.protocol.describe()});
    t.add({"time", fmt_num(r.seconds, 2) + " s"});
    std::cout << t.render();
}

Command add_eval_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("eval", "Perplexity of a model on a text, or its KL divergence against --ref");
    struct Opts {
        std::string model, text, ref, kl_out, packed, out;
        bool int8 = false;
        EvalOptions eval;
    };
    auto o = std::make_shared<Opts>();
    auto* model_opt = sub->add_option("model", o->model,
                                      "HF model directory (or a packed checkpoint, dequantized), or a quantize run "
                                      "FILE.h5[:RUN]: its KL against its own full-precision model");
    auto* packed_opt = sub->add_option(
        "--packed", o->packed,
        "Packed checkpoint directory: run it through the packed kernels and, in the same run, dequantized in "
        "dense fp32; print both perplexities and throughputs");
    sub->add_flag("--int8-activations", o->int8,
                  "With --packed: quantize each layer's input to int8 in blocks where its kernel has that faster "
                  "path (scalar grids but ternary, LiftQuant, LC-QAT); the perplexity then differs by that rounding")
        ->needs(packed_opt);
    model_opt->excludes(packed_opt);
    packed_opt->excludes(model_opt);
    sub->add_option("--text", o->text, "UTF-8 evaluation text file")->required();
    sub->add_option("--ref", o->ref, "Reference model directory: report KL(ref || model) in lockstep")->excludes(packed_opt);
    sub->add_option("--kl-out", o->kl_out, "With --ref: also write the per-token KL vector as JSON to this file");
    sub->add_option("--out", o->out, "With a run FILE.h5[:RUN]: project file (.h5) to record the evaluation in");
    add_eval_options(sub, o->eval);
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                if (!o->packed.empty()) return eval_packed(o->packed, o->text, o->int8, o->eval, g, progress);
                if (o->model.empty()) throw Error("eval: give a model directory or --packed DIR");
                if (is_run_ref(o->model)) {
                    if (!o->ref.empty()) throw Error("eval " + o->model + ": a run is measured against its own model; drop --ref");
                    return run_recorded(o->out, kEvalRun, 0, g, [&](RunWriter* run) {
                        eval_run(o->model, o->text, o->kl_out, o->eval, g, progress, run);
                    });
                }
                if (!o->out.empty()) throw Error("--out: records the evaluation of a quantize run (FILE.h5:RUN), not of " + o->model);
                auto model = load_model(o->model, &progress);
                auto tok = load_tokenizer(o->model);
                const auto tokens = tokenize_text_file(*tok, o->text, /*add_bos=*/true);
                if (o->ref.empty()) {
                    auto r = evaluate_perplexity({model.get()}, tokens, o->eval, tok->bos_id(), &progress);
                    nlohmann::json j = {{"model", o->model}, {"text", o->text}, {"result", to_json(r)}};
                    if (g.json) {
                        std::cout << j.dump(2) << "\n";
                        return;
                    }
                    Table t({"metric", "value"});
                    t.add({"model", o->model});
                    t.add({"text", o->text});
                    t.add({"protocol", r.protocol.describe()});
                    t.add({"perplexity", fmt_num(r.perplexity, 4)});
                    t.add({"mean NLL (nats)", fmt_num(r.nll_mean, 5)});
                    t.add({"throughput", fmt_num(r.tokens_per_second, 0) + " tokens/s"});
                    t.add({"time", fmt_num(r.seconds, 2) + " s"});
                    std::cout << t.render();
                    return;
                }
                auto ref = load_model(o->ref, &progress);
                auto r = evaluate_kl({ref.get()}, {model.get()}, tokens, o->eval, tok->bos_id(), &progress);
                // Atomic, like every output file: a full disk never leaves a truncated vector behind.
                if (!o->kl_out.empty()) write_file_atomic(o->kl_out, to_json(r, true).dump() + "\n");
                if (g.json) {
                    std::cout << nlohmann::json{{"model", o->model}, {"ref", o->ref}, {"text", o->text}, {"result", to_json(r)}}.dump(2)
                              << "\n";
                    return;
                }
                print_kl_table(r, o->ref, o->model);
            }};
}

Command add_generate_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("generate", "Greedy continuation of a prompt");
    struct Opts {
        std::string model, prompt;
        int max_new = 32;
    };
    auto o = std::make_shared<Opts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    sub->add_option("--prompt", o->prompt, "Prompt text")->required();
    sub->add_option("--max-new", o->max_new, "Tokens to generate")->check(CLI::PositiveNumber);
    return {sub, [o, &g] {
                StderrProgress progress(true);
                auto model = load_model(o->model, &progress);
                auto tok = load_tokenizer(o->model);
                const auto prompt = tok->encode(o->prompt, true);
                const auto out = model->generate_greedy(prompt, o->max_new);
                const std::string text = tok->decode(out);
                if (g.json)
                    std::cout << nlohmann::json{{"prompt", o->prompt}, {"ids", out}, {"text", text}}.dump(2) << "\n";
                else
                    std::cout << o->prompt << text << "\n";
            }};
}

}  // namespace quench::cli
