// ATen before any Qt header: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <ATen/ATen.h>

// The session's jobs (its dispatcher half; the document half is workbench_session.cpp, QAT session_qat.cpp):
// each copies what it needs from the document, queues core's function for its kind on the JobQueue (the
// one quench-cli calls, which also records the run) and, back on the GUI thread, stores the result in the
// state it started from and tells the panels.
#include <QFileInfo>

#include <mutex>

#include "alloc/allocation.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "job_queue.h"
#include "job_runner.h"
#include "jobs/recorded_jobs.h"
#include "quant/dequantized_layers.h"
#include "session_state.h"

namespace quench::gui {

JobRunner* WorkbenchSession::loadModel(const QString& dir) {
    struct Out {
        std::shared_ptr<LlamaModel> model;
        std::shared_ptr<Tokenizer> tok;
    };
    auto out = std::make_shared<Out>();
    const std::string path = utf8(dir);
    JobRunner* job = jobs_->enqueue(tr("Load %1").arg(QFileInfo(dir).fileName()), [out, path](ProgressSink& p) {
        out->model = load_model(path, &p);
        out->tok = load_tokenizer(path);
    });
    connect(job, &JobRunner::finished, this, [this, out] {
        auto fresh = std::make_shared<State>();
        fresh->model = out->model;
        fresh->tok = out->tok;
        s_ = fresh;  // running continuations keep the old state alive until they finish
        constraints_ = {};
        calibCount_ = evalCount_ = -1;
        emit modelLoaded();
        emit constraintsChanged();
    });
    return job;
}

JobRunner* WorkbenchSession::countTokens() {
    struct Out {
        qint64 calib = -1, eval = -1;
    };
    auto out = std::make_shared<Out>();
    auto tok = s_->tok;
    const DataSettings data = data_;
    JobRunner* job = jobs_->enqueue(tr("Count tokens"), [out, tok, data](ProgressSink& p) {
        if (!tok) throw Error("open a model first: its tokenizer counts the tokens");
        p.report(0, "calibration text");
        if (!data.calibPath.isEmpty()) out->calib = qint64(file_tokens(*tok, data.calibPath, 0).size());
        p.check();
        p.report(0.5, "evaluation text");
        if (!data.evalPath.isEmpty()) out->eval = qint64(file_tokens(*tok, data.evalPath, 0).size());
    });
    connect(job, &JobRunner::finished, this, [this, out] {
        calibCount_ = out->calib;
        evalCount_ = out->eval;
        emit tokensCounted();
    });
    return job;
}

struct QuantizeOut {
    QuantizeJobResult job;
    std::string calib_path;  // the calibration text the layers were quantized with (QAT records it)
    std::shared_ptr<std::string> run_id = std::make_shared<std::string>();
};

namespace {

// The job options of the data settings.
QuantizeJobOptions quantize_options(const DataSettings& data) {
    QuantizeJobOptions o;
    o.calib = {utf8(data.calibPath), data.calibTokens};
    o.eval = utf8(data.evalPath);
    o.eval_tokens = data.evalTokens;
    o.ctx = data.context;
    o.calib_inputs = data.calibOnQuantized ? CalibInputs::Quantized : CalibInputs::FullPrecision;
    return o;
}

// A quantize job's run: the job restores the model when it fails; a run that then cannot be committed (a
// full disk) must not leave the model quantized either, as the session forgets the job's results.
void recordQuantize(LlamaModel& model, const std::string& project, const char* kind, const std::string& what,
                    std::shared_ptr<std::string> runId, const std::function<void(RunWriter*)>& work) {
    try {
        run_recorded(project, kind, what, std::move(runId), work);
    } catch (...) {
        model.restore_all();
        throw;
    }
}

// The current quantized layers as a result to record (eval, export): layers and tensors as they stand.
QuantizeResult current_result(const std::vector<LayerResult>& layers, const std::map<std::size_t, QuantizedTensor>& tensors) {
    QuantizeResult r;
    r.layers = layers;
    r.tensors = tensors;
    return r;
}

}  // namespace

JobRunner* WorkbenchSession::quantize(const std::vector<std::size_t>& layers, const QString& spec) {
    // Parse here too so a bad spec fails the job with core's message rather than crashing a plan.
    const std::string text = utf8(spec);
    std::vector<std::size_t> chosen = layers;
    auto state = s_;
    const DataSettings data = data_;
    const std::string project = utf8(projectPath_);
    auto out = std::make_shared<QuantizeOut>();
    JobRunner* job = jobs_->enqueue(tr("Quantize %1 layers: %2").arg(layers.size()).arg(spec),
                                    [state, chosen, text, data, project, out](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        if (chosen.empty()) throw Error("select at least one layer to quantize");
        const CodecSpec cs = CodecSpec::parse(text);
        recordQuantize(*state->model, project, kQuantizeRun, cs.to_string(), out->run_id, [&](RunWriter* run) {
            out->job = quantize_job(*state->model, *state->tok, uniform_plan(chosen, cs), quantize_options(data), &p, run);
        });
        out->calib_path = utf8(data.calibPath);
    });
    connectQuantizeJob(job, state, out, tr("Quantize"), data.evalPath);
    announceRun(job, projectPath_, out->run_id);
    return job;
}

void WorkbenchSession::connectQuantizeJob(JobRunner* job, std::shared_ptr<State> state, std::shared_ptr<QuantizeOut> out,
                                          const QString& source, const QString& evalPath) {
    connect(job, &JobRunner::finished, this, [this, state, out, source, evalPath] {
        QuantizeJobResult& r = out->job;
        state->total_bpw = r.result.total_bits_per_weight();  // before the layers are moved out
        state->results = std::move(r.result.layers);
        state->tensors = std::move(r.result.tensors);
        state->ptq_calib = {out->calib_path, r.calib_tokens};
        state->has_kl = r.has_kl;
        state->kl = std::move(r.kl);
        state->kl_tokens = std::move(r.kl_tokens);
        if (state == s_) {
            if (state->has_kl) noteEvaluation(source, evalPath);
            emit quantized();
            if (state->has_kl) emit evaluated();
            else noteSkippedEvaluation();
        }
    });
    // A failed or cancelled quantize restored every weight: the earlier results no longer describe the model.
    auto forget = [this, state] {
        if (state->results.empty()) return;
        state->results.clear();
        state->tensors.clear();
        state->total_bpw = 0;
        state->has_kl = false;
        if (state == s_) emit quantized();
    };
    connect(job, &JobRunner::failed, this, forget);
    connect(job, &JobRunner::cancelled, this, forget);
}

void WorkbenchSession::announceRun(JobRunner* job, const QString& project, std::shared_ptr<std::string> runId) {
    connect(job, &JobRunner::ended, this, [this, project, runId] {
        if (runId->empty()) return;
        lastRunId_ = QString::fromStdString(*runId);
        emit runRecorded(project, lastRunId_);
    });
}

JobRunner* WorkbenchSession::applyAllocation(const Allocation& allocation) {
    // An allocation names layers and specs; each allocated layer is quantized with its own setting.
    auto state = s_;
    const DataSettings data = data_;
    const std::string project = utf8(projectPath_);
    auto out = std::make_shared<QuantizeOut>();
    const double bpw = allocation.bits_per_weight;
    JobRunner* job = jobs_->enqueue(tr("Apply allocation (%1 bpw)").arg(bpw, 0, 'f', 3),
                                    [state, allocation, data, project, out](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        const std::string source = "workbench allocation at " + std::to_string(allocation.bits_per_weight) + " bpw";
        recordQuantize(*state->model, project, kApplyRun, source, out->run_id, [&](RunWriter* run) {
            out->job = apply_job(*state->model, *state->tok, allocation, source, quantize_options(data), &p, run);
        });
        out->calib_path = utf8(data.calibPath);
    });
    connectQuantizeJob(job, state, out, tr("Apply allocation"), data.evalPath);
    announceRun(job, projectPath_, out->run_id);
    return job;
}

JobRunner* WorkbenchSession::measureSensitivity(const std::vector<std::size_t>& layers, const QStringList& candidates) {
    auto state = s_;
    const DataSettings data = data_;
    const std::string key = utf8(data.calibPath + QLatin1Char('|') + data.evalPath + QLatin1Char('|') +
                                 QString::number(data.calibTokens) + QLatin1Char('|') +
                                 QString::number(data.evalTokens) + QLatin1Char('|') + QString::number(data.context));
    // Measurements taken under other data settings are not extended (core would refuse): start afresh.
    auto measured = std::make_shared<Measurements>(state->measurements_key == key ? state->measurements : Measurements());
    std::vector<std::string> cands;
    for (const auto& c : candidates) cands.push_back(utf8(c));
    std::vector<std::size_t> chosen = layers;
    const std::string project = utf8(projectPath_);
    auto runId = std::make_shared<std::string>();
    // Pairs finished by the worker, handed to the GUI thread at each progress report so the views fill in
    // while the job runs (the worker's own Measurements stays private to it until the job ends).
    struct Inbox {
        std::mutex mutex;
        std::vector<std::pair<SensitivityLayer, SensitivityPoint>> points;
    };
    auto inbox = std::make_shared<Inbox>();
    JobRunner* job = jobs_->enqueue(tr("Sensitivity: %1 layers x %2 settings").arg(layers.size()).arg(candidates.size()),
                                    [state, data, measured, cands, chosen, project, runId, inbox](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        if (chosen.empty()) throw Error("select at least one layer to measure");
        if (data.calibPath.isEmpty()) throw Error("sensitivity needs calibration text (Data panel)");
        auto& model = *state->model;
        run_recorded(project, kSensitivityRun, "sensitivity of " + std::to_string(chosen.size()) + " layers", runId,
                     [&](RunWriter* run) {
            SensitivityJobOptions so;
            so.layers = chosen;
            so.candidates = cands;
            so.calib = {utf8(data.calibPath), data.calibTokens};
            so.kl = {utf8(data.evalPath.isEmpty() ? data.calibPath : data.evalPath), data.evalTokens};
            so.sensitivity.ctx = data.context;
            so.sensitivity.on_point = [inbox](const SensitivityLayer& l, const SensitivityPoint& pt) {
                std::lock_guard<std::mutex> lock(inbox->mutex);
                inbox->points.emplace_back(l, pt);
            };
            // The job measures from the original weights; the quantized ones go back afterwards.
            try {
                sensitivity_job(model, *state->tok, so, *measured, &p, run);
            } catch (...) {
                replace_with_quantized(model, state->tensors);
                throw;
            }
            replace_with_quantized(model, state->tensors);
        });
    });
    connect(job, &JobRunner::progressed, this, [this, state, inbox, key] {
        std::vector<std::pair<SensitivityLayer, SensitivityPoint>> fresh;
        {
            std::lock_guard<std::mutex> lock(inbox->mutex);
            fresh.swap(inbox->points);
        }
        if (fresh.empty()) return;
        if (state->measurements_key != key) {  // other data settings: the views show this run's pairs only
            state->measurements = Measurements();
            state->measurements_key = key;
        }
        for (auto& [l, pt] : fresh) {
            state->measurements.add_layer(l);
            state->measurements.set(std::move(pt));
        }
        state->measurements.fit_proxy();
        if (state == s_) emit sensitivityMeasured();
    });
    connect(job, &JobRunner::finished, this, [this, state, measured, key] {
        state->measurements = std::move(*measured);
        state->measurements_key = key;
        if (state == s_) emit sensitivityMeasured();
    });
    // A cancelled or failed job keeps the pairs it finished (each is complete when stored): the views show
    // them and a re-run measures only the rest.
    const auto keepFinished = [this, state, measured, key] {
        if (measured->empty()) return;  // other data settings and nothing finished: the old set stays
        measured->fit_proxy();
        state->measurements = std::move(*measured);
        state->measurements_key = key;
        if (state == s_) emit sensitivityMeasured();
    };
    connect(job, &JobRunner::cancelled, this, keepFinished);
    connect(job, &JobRunner::failed, this, keepFinished);
    announceRun(job, projectPath_, runId);
    return job;
}

JobRunner* WorkbenchSession::evaluate() {
    auto state = s_;
    const DataSettings data = data_;
    auto out = std::make_shared<KlReport>();
    auto tokens = std::make_shared<std::vector<int32_t>>();
    const std::string project = utf8(projectPath_);
    auto runId = std::make_shared<std::string>();
    JobRunner* job = jobs_->enqueue(tr("Evaluate KL"), [state, data, out, tokens, project, runId](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        if (data.evalPath.isEmpty()) throw Error("choose an evaluation text first (Data panel)");
        run_recorded(project, kEvalRun, "evaluate KL", runId, [&](RunWriter* run) {
            EvalOptions eo;
            eo.ctx = data.context;
            eo.max_tokens = data.evalTokens;
            EvalJobResult r = eval_job(*state->model, *state->tok, current_result(state->results, state->tensors),
                                       utf8(data.evalPath), eo, &p, run);
            *out = std::move(r.kl);
            *tokens = std::move(r.tokens);
        });
    });
    connect(job, &JobRunner::finished, this, [this, state, out, tokens, evalPath = data.evalPath] {
        state->kl = std::move(*out);
        state->kl_tokens = std::move(*tokens);
        state->has_kl = true;
        if (state != s_) return;
        noteEvaluation(tr("Evaluate KL"), evalPath);
        emit evaluated();
    });
    announceRun(job, projectPath_, runId);
    return job;
}

JobRunner* WorkbenchSession::exportModel(const ExportRequest& request) {
    auto state = s_;
    auto bytes = std::make_shared<uint64_t>(0);
    const QString names[] = {QString(), QStringLiteral("packed"), QStringLiteral("HF"), QStringLiteral("GGUF")};
    const std::string project = utf8(projectPath_);
    auto runId = std::make_shared<std::string>();
    JobRunner* job = jobs_->enqueue(tr("Export %1 to %2").arg(names[int(request.format)], request.path),
                                    [state, request, bytes, project, runId](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        const std::string path = utf8(request.path);
        if (path.empty()) throw Error("export: choose where to write");
        ExportJobOptions eo;
        eo.format = coreFormat(request.format);
        eo.out = path;
        eo.replace = request.replace;
        eo.hf_dtype = request.bf16 ? DType::BF16 : DType::F16;
        eo.gguf_type = utf8(request.ggufType);
        run_recorded(project, kExportRun, std::string("export ") + export_format_name(eo.format) + " to " + path, runId,
                     [&](RunWriter* run) {
            *bytes = export_job(*state->model, current_result(state->results, state->tensors), eo, &p, run).bytes;
        });
    });
    connect(job, &JobRunner::finished, this, [this, request, bytes] { emit exported(request.path, qint64(*bytes)); });
    announceRun(job, projectPath_, runId);
    return job;
}

}  // namespace quench::gui
