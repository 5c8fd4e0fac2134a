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
#include "io/model_loading.h"
#include "io/report_json.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "qat/qat_trainer.h"
#include "quant/codec.h"
#include "jobs/model_quantizer.h"
#include "jobs/recorded_jobs.h"
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

void run_qat(QatOpts o, const GlobalOptions& g, ProgressSink& progress, RunWriter* run) {
    const CodecSpec spec = CodecSpec::parse(o.codec);
    if (!qat_supports(spec.codec()))
        throw Error("--codec " + spec.to_string() + ": no QAT form (use " + qat_codec_names() + ")");
    if (o.mode != "block" && o.mode != "e2e") throw Error("--mode '" + o.mode + "': expected block or e2e");
    o.qat.mode = o.mode == "block" ? QatMode::Block : QatMode::EndToEnd;
    if (o.schedule != "cosine" && o.schedule != "wsd") throw Error("--schedule '" + o.schedule + "': expected cosine or wsd");
    o.qat.schedule = o.schedule == "wsd" ? QatSchedule::Wsd : QatSchedule::Cosine;
    o.qat.layer.paretoq_lsq2 = o.lsq;
    o.qat.checkpoint_dir = o.resume;
    o.qat.checkpoint_every = o.checkpoint_every;

    auto model = load_model(o.model, &progress);
    auto tok = load_tokenizer(o.model);
    const auto layers = model->layers().select_glob(o.layers);
    if (layers.empty()) throw Error("--layers '" + o.layers + "': matches no layer");

    // PTQ init: calibration (LC-QAT's Hessians) from the start of the training text.
    QuantizeJobOptions po;
    po.calib = {o.train, o.calib_tokens};
    po.ctx = o.qat.ctx;
    po.seed = o.qat.seed;
    const QuantizeJobResult ptq = quantize_job(*model, *tok, uniform_plan(layers, spec), po, &progress, nullptr);

    const bool verbose = !g.quiet && !g.json;
    const QatCallback report = [&](const QatProgress& p) {
        if (!verbose || (p.step % 10 != 0 && p.step != p.total_steps && p.heldout_kl < 0)) return;
        std::cerr << "\rstep " << p.step << "/" << p.total_steps << (p.block >= 0 ? " block " + std::to_string(p.block) : "")
                  << " loss " << fmt_num(p.loss, 5) << (p.heldout_kl >= 0 ? " held-out KL " + fmt_num(p.heldout_kl, 5) : "")
                  << " " << fmt_num(p.tokens_per_second, 0) << " tok/s ETA " << fmt_num(p.eta_seconds, 0) << " s   \n";
    };
    QatJobOptions qo;
    qo.train = {o.train, 0};
    qo.token_budget = o.tokens;
    qo.eval = o.eval;
    qo.eval_tokens = o.eval_tokens;
    qo.eval_ctx = o.eval_ctx;
    qo.ptq_calib = {o.train, ptq.calib_tokens};
    qo.qat = o.qat;
    qo.with_tensors = !o.no_tensors;
    const QatJobResult job = qat_job(*model, *tok, ptq.result, qo, report, &progress, run);
    const QatResult& r = job.qat;
    const QuantizeResult& trained = job.trained;
    const KlReport &kl_ptq = job.kl_ptq, &kl_qat = job.kl;
    o.qat.tokens = job.token_budget;

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
    sub->add_option("--codec", o->codec, "Codec spec of a codec with a QAT form: " + qat_codec_names())->required();
    sub->add_option("--layers", o->layers, "Layer globs, comma-separated (default: every block's linear layers)");
    sub->add_option("--mode", o->mode, "block (block-wise reconstruction) or e2e (end-to-end next-token loss)");
    sub->add_option("--train", o->train, "Training text (also the PTQ calibration text)")->required();
    sub->add_option("--tokens", o->tokens, "Training token budget: N, 200k, 1.5M, or a fraction: 10%@train, 0.1%@8B");
    sub->add_option("--eval", o->eval, "Held-out evaluation text for KL and perplexity")->required();
    sub->add_option("--eval-tokens", o->eval_tokens, "Evaluate only the first N tokens (the held-out KL curve too)")->check(CLI::NonNegativeNumber);
    sub->add_option("--eval-ctx", o->eval_ctx, "Evaluation window length (default: the model's, up to 2048)");
    sub->add_option("--resume", o->resume, "Checkpoint directory: saved to as training goes, resumed from when it holds one");
    sub->add_option("--checkpoint-every", o->checkpoint_every, "Steps between checkpoints (with --resume)");
    sub->add_option("--ctx", o->qat.ctx, "Training window length")->check(CLI::Range(2, 1 << 20));
    sub->add_option("--batch", o->qat.batch, "Windows per step")->check(CLI::PositiveNumber);
    sub->add_option("--lr", o->qat.lr, "Learning rate of latent weights (default: the codec's)");
    sub->add_option("--scale-lr", o->qat.scale_lr, "Learning rate of scales, affine maps and input transforms (default: the codec's)");
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
    return {sub, [o, &g, sub] {
                // Learning rates not given: the codec row's (quant/codec_registry.h).
                const QatDefaults d = qat_defaults(o->codec.substr(0, o->codec.find(':')));
                if (!sub->count("--lr")) o->qat.lr = d.lr;
                if (!sub->count("--scale-lr")) o->qat.scale_lr = d.scale_lr;
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, kQatRun, o->qat.seed, g, [&](RunWriter* run) { run_qat(*o, g, progress, run); });
            }};
}

}  // namespace quench::cli
