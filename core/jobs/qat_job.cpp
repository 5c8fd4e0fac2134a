// The QAT job: PTQ-initialised layers fine-tuned by the trainer, measured before and after, and the run it
// records; and the one conversion of a QAT result into quantize's result form.
#include <ATen/ATen.h>

#include <algorithm>

#include "analysis/layer_metrics.h"
#include "common/progress.h"
#include "io/run_store.h"
#include "jobs/recorded_job_parts.h"
#include "jobs/recorded_jobs.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "qat/qat_layer.h"
#include "quant/codec.h"
#include "quant/dequantized_layers.h"

namespace quench {

using namespace detail;

QuantizeResult trained_layers(const LlamaModel& model, const QatResult& r) {
    QuantizeResult out;
    for (const auto& [index, q] : r.tensors) {
        LayerResult l;
        l.layer = index;
        l.name = model.layers().at(index).name;
        l.spec = q.spec;
        l.metrics = compare_weights(model.original_weight(index), model.weight(index), at::Tensor());
        l.metrics.code_bits_per_weight = q.code_bits_per_weight();
        l.metrics.total_bits_per_weight = q.total_bits_per_weight();
        l.transform = make_codec(q.spec)->transform_note(q.rows, q.cols);
        out.layers.push_back(std::move(l));
    }
    out.tensors = r.tensors;
    out.seconds = r.seconds;
    return out;
}

namespace {

// The training settings a run records: everything in QatOptions that changes the result.
Attrs qat_settings(const QatOptions& q) {
    return {{"mode", std::string(q.mode == QatMode::Block ? "block" : "e2e")},
            {"token_budget", q.tokens},
            {"ctx", q.ctx},
            {"batch", q.batch},
            {"lr", q.lr},
            {"scale_lr", q.scale_lr},
            {"weight_decay", q.weight_decay},
            {"schedule", std::string(q.schedule == QatSchedule::Wsd ? "wsd" : "cosine")},
            {"warmup", q.warmup},
            {"clip_norm", q.clip_norm},
            {"ce_weight", q.ce_weight},
            {"kl_weight", q.kl_weight},
            {"eval_every", q.eval_every},
            {"lsq", int64_t(q.layer.paretoq_lsq2 ? 1 : 0)},
            {"checkpoint_dir", q.checkpoint_dir}};
}

}  // namespace

QatJobResult qat_job(LlamaModel& model, const Tokenizer& tok, const QuantizeResult& ptq, const QatJobOptions& o,
                     const QatCallback& callback, ProgressSink* progress, RunWriter* run) {
    ProgressSink& p = progress ? *progress : null_progress();
    QatOptions q = o.qat;
    const auto train = text_tokens(tok, o.train.path, o.train.tokens);
    const auto heldout = text_tokens(tok, o.eval, o.eval_tokens);
    q.tokens = parse_token_budget(o.token_budget, int64_t(train.size()));
    const bool eval = !o.eval.empty();
    if (run) {
        std::vector<std::string> specs, names;
        for (const auto& [index, t] : ptq.tensors) {
            const std::string s = t.spec.to_string();
            if (std::find(specs.begin(), specs.end(), s) == specs.end()) specs.push_back(s);
            names.push_back(model.layers().at(index).name);
        }
        Attrs attrs = qat_settings(q);
        attrs["codec"] = joined(specs, ";");
        attrs["layers"] = joined(names, ",");
        run->set_attrs(attrs);
        SubProgress hashing(p, 0, 0.02);
        record_model(run, model, hashing);
    }
    if (q.layer.paretoq_lsq2) {
        // The LSQ grid starts from its own init (alpha = max|w|), not from the SEQ PTQ: measure that init.
        for (const auto& [layer, t] : ptq.tensors)
            replace_with_quantized(model, layer,
                                   make_qat_layer(t, model.original_weight(layer), q.layer)->export_tensor());
    }
    QatJobResult out;
    out.token_budget = q.tokens;
    EvalOptions eo;
    eo.ctx = o.eval_ctx;
    eo.max_tokens = o.eval_tokens;
    if (eval) {
        SubProgress ep(p, 0.02, 0.07);
        out.kl_ptq = eval_against_original(model, tok, o.eval, eo, ep, nullptr);
    }
    {
        SubProgress tp(p, eval ? 0.07 : 0.02, eval ? 0.93 : 1.0);
        out.qat = train_qat(model, ptq.tensors, train, heldout, q, callback, &tp);
    }
    if (eval) {
        SubProgress ep(p, 0.93, 1.0);
        out.kl = eval_against_original(model, tok, o.eval, eo, ep, &out.kl_tokens);
        out.has_kl = true;
    }
    out.trained = trained_layers(model, out.qat);
    if (!run) return out;
    const QatResult& r = out.qat;
    std::vector<DataProvenance> data{data_provenance("train", o.train.path, r.tokens_used)};
    if (!o.ptq_calib.path.empty()) data.push_back(data_provenance("calib", o.ptq_calib.path, o.ptq_calib.tokens));
    if (eval) data.push_back(eval_provenance(o.eval, out.kl));
    write_data_provenance(*run, data);
    write_quantize_result(*run, out.trained, o.with_tensors);
    if (eval) {
        write_kl_report(*run, out.kl_ptq, "kl_ptq");
        write_kl_report(*run, out.kl, "kl");
    }
    Table loss;
    loss.add("step", r.steps).add("block", r.blocks).add("loss", r.losses).add("lr", r.lrs);
    run->write_table("qat_loss", loss);
    Table kl;
    kl.add("step", r.kl_steps).add("kl", r.kl_values, "nats");
    run->write_table("qat_kl", kl);
    run->set_attrs({{"tokens_used", r.tokens_used}, {"steps", r.total_steps}, {"resumed_from", r.resumed_from},
                    {"total_bpw", out.trained.total_bits_per_weight()}});
    return out;
}

}  // namespace quench
