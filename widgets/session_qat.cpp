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
#include "jobs/run_records.h"
#include "job_queue.h"
#include "job_runner.h"
#include "common/progress.h"
#include "qat/qat_trainer.h"
#include "quant/codec.h"
#include "jobs/recorded_jobs.h"
#include "quant/dequantized_layers.h"
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
        if (state->tensors.empty()) throw Error("QAT starts from quantized layers: quantize the selected layers with " + qat_codec_names() + " first");
        std::set<std::string> codecs;
        for (const auto& [index, q] : state->tensors) {
            if (!qat_supports(q.spec.codec()))
                throw Error("QAT cannot train " + state->model->layers().at(index).name + " (" + q.spec.to_string() +
                            "): quantize with " + qat_codec_names());
            codecs.insert(q.spec.to_string());
        }
        if (data.calibPath.isEmpty()) throw Error("QAT trains on the calibration text (Data panel)");
        check_checkpoint(request);
        QatJobOptions o;
        o.train = {utf8(data.calibPath), 0};
        o.token_budget = utf8(request.tokens);
        o.eval = utf8(data.evalPath);
        o.eval_tokens = data.evalTokens;
        o.eval_ctx = data.context;
        o.ptq_calib = state->ptq_calib;
        o.qat.mode = request.blockwise ? QatMode::Block : QatMode::EndToEnd;
        o.qat.lr = request.lr;
        o.qat.scale_lr = request.scaleLr;
        if (data.context > 0) o.qat.ctx = data.context;
        o.qat.checkpoint_dir = utf8(request.checkpointDir);
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
        QuantizeResult ptq;
        ptq.tensors = state->tensors;
        try {
            run_recorded(project, kQatRun, what, runId, [&](RunWriter* run) {
                QatJobResult r = qat_job(model, *state->tok, ptq, o, callback, &p, run);
                // The trained layers replace the PTQ ones; the trained model's KL (when measured) the earlier one.
                out->has_kl = r.has_kl;
                out->kl = std::move(r.kl);
                out->kl_tokens = std::move(r.kl_tokens);
                out->total_bpw = r.trained.total_bits_per_weight();
                out->results = std::move(r.trained.layers);
                out->tensors = std::move(r.qat.tensors);
                QatCurve& c = out->curve;
                c.steps.assign(r.qat.steps.begin(), r.qat.steps.end());
                c.losses = r.qat.losses;
                c.klSteps.assign(r.qat.kl_steps.begin(), r.qat.kl_steps.end());
                c.klValues = r.qat.kl_values;
                c.totalSteps = r.qat.total_steps;
                c.resumedFrom = r.qat.resumed_from;
            });
        } catch (...) {
            // Failed, cancelled or not recorded: the model goes back to the layers the session still holds.
            replace_with_quantized(model, state->tensors);
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
