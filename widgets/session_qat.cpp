// ATen before any Qt header: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <ATen/ATen.h>

// The QAT job of the session: fine-tunes the quantized layers with core's trainer, saves resumable
// checkpoints where the QAT section says, continues a cancelled run from its checkpoint, and records the run.
#include <QDir>
#include <QFileInfo>
#include <QPointer>

#include <algorithm>
#include <set>

#include "analysis/layer_metrics.h"
#include "common/error.h"
#include "io/run_records.h"
#include "job_queue.h"
#include "job_runner.h"
#include "jobs/progress.h"
#include "qat/qat_trainer.h"
#include "quant/codec.h"
#include "session_records.h"
#include "session_state.h"

namespace quench::gui {

QString qatCheckpointFile(const QString& dir) {
    return QDir::cleanPath(QString::fromStdString(qat_checkpoint_path(dir.toStdString())));
}

namespace {

// Refuses a start that would silently continue an earlier run, and a resume with nothing to continue;
// core's trainer resumes whatever checkpoint the directory holds (and names the file when it does not fit).
void check_checkpoint(const QatRequest& request) {
    const QString file = qatCheckpointFile(request.checkpointDir);
    if (request.resume && request.checkpointDir.isEmpty())
        throw Error("QAT resume: choose the checkpoint directory of the run to continue (QAT section)");
    if (request.resume && !QFileInfo::exists(file))
        throw Error(utf8(file) + ": no QAT checkpoint to resume (Train with this checkpoint directory saves one)");
    if (!request.resume && !request.checkpointDir.isEmpty() && QFileInfo::exists(file))
        throw Error(utf8(file) + ": holds the checkpoint of an earlier run; Resume continues it, or choose another "
                                 "checkpoint directory to train afresh");
}

}  // namespace

JobRunner* WorkbenchSession::trainQat(const QatRequest& request) {
    auto state = s_;
    const DataSettings data = data_;
    struct Out {
        std::map<std::size_t, QuantizedTensor> tensors;
        std::vector<LayerResult> results;
        double total_bpw = 0;
        QatCurve curve;
        bool has_kl = false;  // evaluated after training (there is evaluation text)
        KlReport kl;
        std::vector<int32_t> kl_tokens;
    };
    auto out = std::make_shared<Out>();
    const std::string project = utf8(projectPath_);
    auto runId = std::make_shared<std::string>();
    QPointer<WorkbenchSession> self(this);
    const QString mode = request.blockwise ? tr("block-wise") : tr("end-to-end");
    const QString name = request.resume ? tr("QAT resume (%1, %2 tokens)").arg(mode, request.tokens)
                                        : tr("QAT (%1, %2 tokens)").arg(mode, request.tokens);
    JobRunner* job = jobs_->enqueue(name, [state, data, request, out, self, project, runId](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        if (state->tensors.empty()) throw Error("QAT starts from quantized layers: quantize the selected layers with paretoq, lcqat or liftquant first");
        std::set<std::string> codecs;
        for (const auto& [index, q] : state->tensors) {
            if (!qat_supports(q.spec.codec()))
                throw Error("QAT cannot train " + state->model->layers().at(index).name + " (" + q.spec.to_string() +
                            "): quantize with paretoq, lcqat or liftquant");
            codecs.insert(q.spec.to_string());
        }
        if (data.calibPath.isEmpty()) throw Error("QAT trains on the calibration text (Data panel)");
        check_checkpoint(request);
        const auto train = file_tokens(*state->tok, data.calibPath, 0);
        const auto heldout = file_tokens(*state->tok, data.evalPath, data.evalTokens);
        QatOptions o;
        o.mode = request.blockwise ? QatMode::Block : QatMode::EndToEnd;
        o.tokens = parse_token_budget(utf8(request.tokens), int64_t(train.size()));
        o.lr = request.lr;
        o.scale_lr = request.scaleLr;
        if (data.context > 0) o.ctx = data.context;
        o.checkpoint_dir = utf8(request.checkpointDir);
        // Steps reach the chart through queued calls (TrainingCurves buffers and repaints on its own timer).
        const QatCallback callback = [self](const QatProgress& step) {
            QMetaObject::invokeMethod(self, [self, step] {
                if (self) emit self->qatStep(step.step, step.loss, step.heldout_kl);
            }, Qt::QueuedConnection);
        };
        auto& model = *state->model;
        std::string codec;
        for (const auto& c : codecs) codec += (codec.empty() ? "" : ";") + c;
        const std::string what = std::string(request.resume ? "resume QAT" : "QAT") + " of " +
                                 std::to_string(state->tensors.size()) + " layers (" + codec + ")";
        bool trained = false;  // the model holds the trained layers
        const bool eval = !data.evalPath.isEmpty();
        const auto work = [&](RunWriter* run) {
            SubProgress tp(p, 0, eval ? 0.9 : 1.0);
            QatResult r = train_qat(model, state->tensors, train, heldout, o, callback, &tp);
            trained = true;
            // The trained model's KL as quantize measures it (the CLI's qat reports it too), so the summary and
            // the run show what training bought.
            if (eval) {
                EvalOptions eo;
                eo.ctx = data.context;
                eo.max_tokens = data.evalTokens;
                SubProgress ep(p, 0.9, 1.0);
                out->kl_tokens = file_tokens(*state->tok, data.evalPath, 0);
                out->kl = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, out->kl_tokens, eo,
                                      state->tok->bos_id(), &ep);
                out->kl_tokens.resize(std::min<std::size_t>(out->kl_tokens.size(), std::size_t(out->kl.protocol.text_tokens)));
                out->has_kl = true;
            }
            // The trained layers replace the PTQ ones; their weight errors are measured again.
            QuantizeResult trained;
            for (auto& [index, q] : r.tensors) {
                LayerResult lr;
                lr.layer = index;
                lr.name = model.layers().at(index).name;
                lr.spec = q.spec;
                lr.metrics = compare_weights(model.original_weight(index), model.weight(index), at::Tensor());
                lr.metrics.code_bits_per_weight = q.code_bits_per_weight();
                lr.metrics.total_bits_per_weight = q.total_bits_per_weight();
                lr.transform = make_codec(q.spec)->transform_note(q.rows, q.cols);
                trained.layers.push_back(lr);
            }
            trained.tensors = r.tensors;
            trained.seconds = r.seconds;
            if (run) {
                std::vector<DataProvenance> dp{data_provenance("train", utf8(data.calibPath), r.tokens_used)};
                if (eval)
                    dp.push_back(data_provenance("eval", utf8(data.evalPath), out->kl.protocol.text_tokens,
                                                 out->kl.protocol.describe()));
                record_qat(*run, model, dp, r, trained, eval ? &out->kl : nullptr,
                           {{"codec", codec}, {"mode", std::string(request.blockwise ? "block" : "e2e")},
                            {"token_budget", o.tokens}, {"lr", o.lr}, {"scale_lr", o.scale_lr}, {"ctx", o.ctx},
                            {"checkpoint_dir", o.checkpoint_dir}});
            }
            out->total_bpw = trained.total_bits_per_weight();
            out->results = std::move(trained.layers);
            out->tensors = std::move(r.tensors);
            QatCurve& c = out->curve;
            c.steps.assign(r.steps.begin(), r.steps.end());
            c.losses = r.losses;
            c.klSteps.assign(r.kl_steps.begin(), r.kl_steps.end());
            c.klValues = r.kl_values;
            c.totalSteps = r.total_steps;
            c.resumedFrom = r.resumed_from;
        };
        try {
            run_recorded(project, "qat", what, runId, work);
        } catch (...) {
            // Trained but not recorded (a full disk): the model goes back to the layers the session still holds.
            if (trained) reapply(model, state->tensors);
            throw;
        }
    });
    emit qatStarted(request.resume);
    connect(job, &JobRunner::finished, this, [this, state, out, evalPath = data.evalPath] {
        for (auto& [index, q] : out->tensors) state->tensors[index] = std::move(q);
        state->results = std::move(out->results);
        state->total_bpw = out->total_bpw;
        // An earlier report describes the untrained layers: it goes, replaced by the trained model's if measured.
        state->has_kl = out->has_kl;
        state->kl = std::move(out->kl);
        state->kl_tokens = std::move(out->kl_tokens);
        if (state != s_) return;
        qatCurve_ = std::move(out->curve);
        if (state->has_kl) noteEvaluation(tr("QAT"), evalPath);
        emit quantized();
        if (state->has_kl) emit evaluated();
        else noteSkippedEvaluation();
        emit qatFinished();
    });
    announceRun(job, projectPath_, runId);
    return job;
}

}  // namespace quench::gui
