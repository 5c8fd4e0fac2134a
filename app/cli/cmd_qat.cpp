// quench-cli qat MODEL --codec SPEC --layers GLOB --mode block|e2e --train FILE --tokens N --eval FILE
// [--resume DIR] [--out FILE.h5] [--json]: PTQ-initialises the selected layers, fine-tunes their
// quantization parameters (core/qat/qat_trainer.h), and prints the PTQ-init and post-QAT KL and perplexity
// side by side. With --out the run (both KL reports, the QAT loss and held-out KL curves as tables, the
// trained tensors) is recorded in a project file, as quantize --out records a PTQ run.
#include <iostream>
#include <nlohmann/json.hpp>

#include "analysis/layer_metrics.h"
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
#include "qat/qat_trainer.h"
#include "quant/codec.h"
#include "quant/model_quantizer.h"
#include "run_recording.h"

namespace quench::cli {
namespace {

struct QatOpts {
    std::string model, codec, layers = "model.layers.*", mode = "e2e", train, tokens = "20000", eval, resume, out;
    std::string schedule = "cosine";
    int64_t calib_tokens = 16384, eval_tokens = 0, eval_ctx = 0, checkpoint_every = 50;
    bool lsq = false, no_tensors = false;
    QatOptions qat;
};

KlReport eval_kl(const LlamaModel& model, const std::vector<int32_t>& tokens, const QatOpts& o, int32_t bos,
                 ProgressSink& progress) {
    EvalOptions eo;
    eo.ctx = o.eval_ctx;
    eo.max_tokens = o.eval_tokens;
    return evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, tokens, eo, bos, &progress);
}

quench::Table curve_table(const QatResult& r) {
    quench::Table t;
    t.add("step", r.steps).add("block", r.blocks).add("loss", r.losses).add("lr", r.lrs);
    return t;
}

void run_qat(QatOpts o, const GlobalOptions& g, ProgressSink& progress, RunWriter* run) {
    const CodecSpec spec = CodecSpec::parse(o.codec);
    if (!qat_supports(spec.codec()))
        throw Error("--codec " + spec.to_string() + ": no QAT form (use paretoq, lcqat or liftquant)");
    if (o.mode != "block" && o.mode != "e2e") throw Error("--mode '" + o.mode + "': expected block or e2e");
    o.qat.mode = o.mode == "block" ? QatMode::Block : QatMode::EndToEnd;
    if (o.schedule != "cosine" && o.schedule != "wsd") throw Error("--schedule '" + o.schedule + "': expected cosine or wsd");
    o.qat.schedule = o.schedule == "wsd" ? QatSchedule::Wsd : QatSchedule::Cosine;
    o.qat.layer.paretoq_lsq2 = o.lsq;
    o.qat.checkpoint_dir = o.resume;
    o.qat.checkpoint_every = o.checkpoint_every;

    auto model = LlamaModel::load(o.model, &progress);
    auto tok = load_tokenizer(o.model);
    const auto layers = model->layers().select_glob(o.layers);
    if (layers.empty()) throw Error("--layers '" + o.layers + "': matches no layer");
    const auto train = tokenize_text_file(*tok, o.train, true);
    const auto eval = tokenize_text_file(*tok, o.eval, true);
    o.qat.tokens = parse_token_budget(o.tokens, static_cast<int64_t>(train.size()));
    if (run) {
        run->set_attrs({{"codec", spec.to_string()}, {"layers", o.layers}, {"mode", o.mode},
                        {"token_budget", o.qat.tokens}});
        write_model_provenance(*run, model_provenance(*model, &progress));
    }

    // PTQ init: calibration (LC-QAT's Hessians) from the start of the training text.
    const std::vector<int32_t> calib(train.begin(), train.begin() + std::min<int64_t>(o.calib_tokens, train.size()));
    QuantizeOptions qo;
    qo.seed = o.qat.seed;
    qo.capture.ctx = o.qat.ctx;
    QuantizeResult ptq = quantize_model_layers(*model, uniform_plan(layers, spec), calib, qo, &progress);
    if (o.lsq) {
        // The LSQ grid starts from its own init (alpha = max|w|), not from the SEQ PTQ: measure that init.
        for (const auto& [layer, t] : ptq.tensors) {
            const QuantizedTensor init = make_qat_layer(t, model->original_weight(layer), o.qat.layer)->export_tensor();
            model->replace_weight(layer, make_codec(init.spec)->dequantize(init));
        }
    }
    const KlReport kl_ptq = eval_kl(*model, eval, o, tok->bos_id(), progress);

    const bool verbose = !g.quiet && !g.json;
    const QatCallback report = [&](const QatProgress& p) {
        if (!verbose || (p.step % 10 != 0 && p.step != p.total_steps && p.heldout_kl < 0)) return;
        std::cerr << "\rstep " << p.step << "/" << p.total_steps << (p.block >= 0 ? " block " + std::to_string(p.block) : "")
                  << " loss " << fmt_num(p.loss, 5) << (p.heldout_kl >= 0 ? " held-out KL " + fmt_num(p.heldout_kl, 5) : "")
                  << " " << fmt_num(p.tokens_per_second, 0) << " tok/s ETA " << fmt_num(p.eta_seconds, 0) << " s   \n";
    };
    const QatResult r = train_qat(*model, ptq.tensors, train, eval, o.qat, report, &progress);
    const KlReport kl_qat = eval_kl(*model, eval, o, tok->bos_id(), progress);

    // The trained layers in quantize's record form: metrics against full precision, the exported tensors.
    QuantizeResult trained;
    for (const auto& l : ptq.layers) {
        const QuantizedTensor& q = r.tensors.at(l.layer);
        LayerMetrics m = compare_weights(model->original_weight(l.layer), model->weight(l.layer), at::Tensor());
        m.code_bits_per_weight = q.code_bits_per_weight();
        m.total_bits_per_weight = q.total_bits_per_weight();
        trained.layers.push_back({l.layer, l.name, q.spec, m, l.transform});
    }
    trained.tensors = r.tensors;
    trained.seconds = r.seconds;

    if (run) {
        write_data_provenance(*run, {data_provenance("train", o.train, r.tokens_used),
                                     data_provenance("calib", o.train, static_cast<int64_t>(calib.size())),
                                     data_provenance("eval", o.eval, kl_qat.protocol.text_tokens, kl_qat.protocol.describe())});
        write_quantize_result(*run, trained, !o.no_tensors);
        write_kl_report(*run, kl_ptq, "kl_ptq");
        write_kl_report(*run, kl_qat, "kl");
        run->write_table("qat_loss", curve_table(r));
        quench::Table klc;
        klc.add("step", r.kl_steps).add("kl", r.kl_values, "nats");
        run->write_table("qat_kl", klc);
        run->set_attrs({{"tokens_used", r.tokens_used}, {"steps", r.total_steps}, {"resumed_from", r.resumed_from},
                        {"total_bpw", trained.total_bits_per_weight()}});
    }
    if (g.json) {
        nlohmann::json j = {{"model", o.model}, {"codec", spec.to_string()}, {"mode", o.mode},
                            {"layers", layers.size()}, {"token_budget", o.qat.tokens}, {"tokens_used", r.tokens_used},
                            {"steps", r.total_steps}, {"resumed_from", r.resumed_from}, {"final_loss", r.final_loss()},
                            {"seconds", r.seconds}, {"total_bpw", trained.total_bits_per_weight()},
                            {"kl_ptq", to_json(kl_ptq)}, {"kl", to_json(kl_qat)},
                            {"loss_curve", r.losses}, {"heldout_kl_steps", r.kl_steps}, {"heldout_kl", r.kl_values}};
        std::cout << j.dump(2) << "\n";
        return;
    }
    cli::Table t({"metric", "PTQ init", "after QAT"});
    t.add({"KL mean (nats)", fmt_num(kl_ptq.kl_mean, 6), fmt_num(kl_qat.kl_mean, 6)});
    t.add({"KL p99", fmt_num(kl_ptq.kl_p99, 5), fmt_num(kl_qat.kl_p99, 5)});
    t.add({"top-1 agreement %", fmt_num(100 * kl_ptq.top1_agreement, 2), fmt_num(100 * kl_qat.top1_agreement, 2)});
    t.add({"perplexity", fmt_num(kl_ptq.ppl_test, 4), fmt_num(kl_qat.ppl_test, 4)});
    t.add({"perplexity (full precision)", fmt_num(kl_ptq.ppl_ref, 4), fmt_num(kl_qat.ppl_ref, 4)});
    std::cout << "codec " << spec.to_string() << (o.lsq ? " (LSQ grid)" : "") << ", " << layers.size() << " layers, mode "
              << o.mode << ", " << r.tokens_used << " training tokens in " << r.total_steps << " steps ("
              << fmt_num(r.seconds, 1) << " s" << (r.resumed_from ? ", resumed at step " + std::to_string(r.resumed_from) : "")
              << ")\n\n"
              << t.render() << "protocol " << kl_qat.protocol.describe() << "\n";
}

}  // namespace

Command add_qat_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("qat", "Quantization-aware fine-tuning of selected layers from their PTQ init");
    auto o = std::make_shared<QatOpts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    sub->add_option("--codec", o->codec, "paretoq:b=1|1.58|2|3|4, lcqat[:...] or liftquant:D=..,d=..")->required();
    sub->add_option("--layers", o->layers, "Layer globs, comma-separated (default: every block's linear layers)");
    sub->add_option("--mode", o->mode, "block (block-wise reconstruction) or e2e (end-to-end next-token loss)");
    sub->add_option("--train", o->train, "Training text (also the PTQ calibration text)")->required();
    sub->add_option("--tokens", o->tokens, "Training token budget: N, 200k, 1.5M, or a fraction: 10%@train, 0.1%@8B");
    sub->add_option("--eval", o->eval, "Held-out evaluation text for KL and perplexity")->required();
    sub->add_option("--eval-tokens", o->eval_tokens, "Evaluate only the first N tokens")->check(CLI::NonNegativeNumber);
    sub->add_option("--eval-ctx", o->eval_ctx, "Evaluation window length (default: the model's, up to 2048)");
    sub->add_option("--resume", o->resume, "Checkpoint directory: saved to as training goes, resumed from when it holds one");
    sub->add_option("--checkpoint-every", o->checkpoint_every, "Steps between checkpoints (with --resume)");
    sub->add_option("--ctx", o->qat.ctx, "Training window length")->check(CLI::Range(2, 1 << 20));
    sub->add_option("--batch", o->qat.batch, "Windows per step")->check(CLI::PositiveNumber);
    sub->add_option("--lr", o->qat.lr, "Learning rate of latent weights");
    sub->add_option("--scale-lr", o->qat.scale_lr, "Learning rate of scales, affine maps and input transforms");
    sub->add_option("--weight-decay", o->qat.weight_decay, "AdamW weight decay");
    sub->add_option("--schedule", o->schedule, "cosine or wsd (warmup-stable-decay)");
    sub->add_option("--warmup", o->qat.warmup, "Fraction of steps of linear warmup");
    sub->add_option("--clip", o->qat.clip_norm, "Global gradient-norm clip (0: none)");
    sub->add_option("--kl-weight", o->qat.kl_weight, "e2e: add this times KL to the full-precision logits");
    sub->add_option("--ce-weight", o->qat.ce_weight, "e2e: weight of the next-token cross-entropy (0: pure distillation)");
    sub->add_option("--eval-every", o->qat.eval_every, "Steps between held-out KL measurements");
    sub->add_option("--calib-tokens", o->calib_tokens, "Calibration tokens for the PTQ init")->check(CLI::PositiveNumber);
    sub->add_option("--seed", o->qat.seed, "Seed of the data order and the PTQ init");
    sub->add_flag("--lsq", o->lsq, "paretoq:b=2 only: train the 2-bit LSQ grid instead of SEQ");
    sub->add_option("--out", o->out, "Project file (.h5) to record the run in; created when absent");
    sub->add_flag("--no-tensors", o->no_tensors, "With --out: record metrics and curves only, not the tensors");
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, "qat", o->qat.seed, g, [&](RunWriter* run) { run_qat(*o, g, progress, run); });
            }};
}

}  // namespace quench::cli
