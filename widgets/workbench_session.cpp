// ATen before any Qt header: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <ATen/ATen.h>

#include "workbench_session.h"

#include <QFileInfo>

#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "alloc/allocation.h"
#include "analysis/model_eval.h"
#include "io/model_loading.h"
#include "jobs/sensitivity.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "io/gguf_export.h"
#include "io/hf_export.h"
#include "io/packed_checkpoint.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "common/progress.h"
#include "job_queue.h"
#include "model/dtype.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"
#include "jobs/model_quantizer.h"
#include "jobs/recorded_jobs.h"
#include "quant/dequantized_layers.h"

#include "session_state.h"

namespace quench::gui {

WorkbenchSession::WorkbenchSession(JobQueue* jobs, QObject* parent)
    : QObject(parent), jobs_(jobs), s_(std::make_shared<State>()) {}

WorkbenchSession::~WorkbenchSession() = default;

bool WorkbenchSession::hasModel() const { return s_->model != nullptr; }
QString WorkbenchSession::modelDir() const { return s_->model ? QString::fromStdString(s_->model->dir()) : QString(); }
const LayerRegistry& WorkbenchSession::layers() const { return s_->model ? s_->model->layers() : s_->no_layers; }
int64_t WorkbenchSession::maxPositions() const { return s_->model ? s_->model->config().max_position_embeddings : 0; }

QString WorkbenchSession::modelSummary() const {
    if (!s_->model) return tr("No model");
    const auto& c = s_->model->config();
    return tr("%1, %2 blocks, hidden %3, %4 parameters, %5 linear layers")
        .arg(QString::fromStdString(c.architecture))
        .arg(c.num_hidden_layers)
        .arg(c.hidden_size)
        .arg(s_->model->num_params())
        .arg(s_->model->layers().size());
}

const std::vector<LayerResult>& WorkbenchSession::layerResults() const { return s_->results; }
const Measurements& WorkbenchSession::measurements() const { return s_->measurements; }
bool WorkbenchSession::hasKl() const { return s_->has_kl; }
const KlReport& WorkbenchSession::klReport() const { return s_->kl; }
std::map<std::size_t, LayerOutcome> WorkbenchSession::layerOutcomes() const {
    std::map<std::size_t, LayerOutcome> out;
    for (const auto& r : s_->results) {
        LayerOutcome o;
        o.spec = QString::fromStdString(r.spec.to_string());
        o.bitsPerWeight = r.metrics.total_bits_per_weight;
        o.relError = r.metrics.rel_fro_error;
        o.sqnrDb = r.metrics.sqnr_db;
        o.outputRelError = r.metrics.output_rel_error;
        out[r.layer] = o;
    }
    return out;
}

QStringList WorkbenchSession::measuredSpecs(const QString& layer) const {
    QStringList specs;
    for (const auto* p : s_->measurements.points_of(utf8(layer)))
        if (p->available) specs << QString::fromStdString(p->spec);
    return specs;
}

double WorkbenchSession::totalBitsPerWeight() const { return s_->total_bpw; }
const Tokenizer* WorkbenchSession::tokenizer() const { return s_->tok.get(); }
const std::vector<int32_t>& WorkbenchSession::evaluatedTokens() const { return s_->kl_tokens; }

std::vector<float> WorkbenchSession::originalWeights(std::size_t layer) const {
    if (!s_->model) return {};
    // The originals are never modified by jobs (only the current weights are), so reading them here while a
    // job runs is safe.
    const at::Tensor w = s_->model->original_weight(layer).to(at::kFloat).contiguous();
    const float* p = w.data_ptr<float>();
    return std::vector<float>(p, p + w.numel());
}

const QuantizedTensor* WorkbenchSession::quantizedTensor(std::size_t layer) const {
    const auto it = s_->tensors.find(layer);
    return it == s_->tensors.end() ? nullptr : &it->second;
}

AllocationSpec WorkbenchSession::allocationSpec() const {
    AllocationSpec spec = to_allocation_spec(s_->measurements, CostSource::Auto);
    // Only constraints on layers of the problem: a pin on a layer that was not measured would be an error
    // about a layer the user is not allocating.
    std::map<std::string, bool> in_problem;
    for (const auto& l : spec.layers) in_problem[l.name] = true;
    for (const auto& [name, pin] : constraints_.pins)
        if (in_problem.count(name)) spec.constraints.pins[name] = pin;
    for (const auto& [name, range] : constraints_.layer_limits)
        if (in_problem.count(name)) spec.constraints.layer_limits[name] = range;
    spec.constraints.limits = constraints_.limits;
    return spec;
}

double WorkbenchSession::estimateBitsPerWeight(const std::string& spec, const std::vector<std::size_t>& layers,
                                               bool afterQat) const {
    auto codec = make_codec(spec);
    const auto& reg = this->layers();
    // Layers the setting cannot take are named, all of them, before anything runs.
    const std::vector<std::string> refused = refused_layers(reg, uniform_plan(layers, codec->spec()));
    if (!refused.empty()) throw quench::Error(refusal_text(refused, layers.size()));
    if (layers.empty()) {  // no layer chosen: a representative 4096 x 4096 weight
        const CodecTraits* row = afterQat ? find_codec(codec->spec().codec()) : nullptr;
        const BitsEstimate e = row && row->qat && row->qat_bits ? row->qat_bits(*codec, 4096, 4096)
                                                                : codec->estimate_bits(4096, 4096);
        return e.total_bits_per_weight;
    }
    // Shared parts once, as the run that follows will count them.
    return estimate_plan_bits(reg, uniform_plan(layers, codec->spec()), afterQat).bits_per_weight();
}

double WorkbenchSession::estimateExportBytes(const ExportRequest& request) const {
    if (!s_->model) return 0;
    GgufExportOptions gguf;
    if (request.format == ExportFormat::Gguf) {
        try {
            gguf = gguf_export_options(*s_->model, s_->tensors, utf8(request.ggufType));
        } catch (const Error&) {
            gguf = {};  // a type name the export will refuse: estimated at F16 meanwhile
        }
    }
    return estimate_export_bytes(*s_->model, s_->tensors, coreFormat(request.format), gguf);
}

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

void WorkbenchSession::noteEvaluation(const QString& source, const QString& evalPath) {
    if (evaluationsOf_.lock() != s_) evaluations_.clear();  // another model: its evaluations compare to nothing
    evaluationsOf_ = s_;
    const KlReport& kl = s_->kl;
    EvalSummary e;
    e.source = source;
    e.quantizedLayers = int(s_->results.size());
    e.bitsPerWeight = s_->total_bpw;
    e.klMean = kl.kl_mean;
    e.klStderr = kl.kl_stderr;
    e.klP99 = kl.kl_p99;
    e.top1 = kl.top1_agreement;
    e.pplTest = kl.ppl_test;
    e.pplRef = kl.ppl_ref;
    e.protocol = protocolView(kl.protocol);
    e.protocol.file = evalPath;
    std::vector<std::size_t> quantized;
    for (const auto& r : s_->results) quantized.push_back(r.layer);
    if (!quantized.empty()) e.uniform = bestUniform(e.bitsPerWeight, quantized);
    evaluations_.push_back(std::move(e));
}

const std::vector<EvalSummary>& WorkbenchSession::evaluations() const {
    static const std::vector<EvalSummary> none;
    return evaluationsOf_.lock() == s_ ? evaluations_ : none;  // those of an earlier model are not shown
}

void WorkbenchSession::noteSkippedEvaluation() {
    emit klSkipped(tr("KL not measured: it needs an evaluation text (Data panel)"));
}

UniformPrediction WorkbenchSession::bestUniform(double maxBpw, const std::vector<std::size_t>& layers) const {
    UniformPrediction best;
    if (s_->measurements.empty() || layers.empty()) return best;
    AllocationSpec spec;
    try {
        spec = to_allocation_spec(s_->measurements, CostSource::Auto);  // costs as the allocation predicts KL
    } catch (const Error&) {
        return best;  // a measured layer without any usable candidate: no uniform setting covers it
    }
    const auto& reg = this->layers();
    std::set<std::size_t> measured;
    for (const auto& l : spec.layers)
        if (auto i = reg.index_of(l.name)) measured.insert(*i);
    if (measured != std::set<std::size_t>(layers.begin(), layers.end())) return best;
    // A uniform setting is a spec every layer has a cost for; its predicted KL is the sum of those costs.
    std::map<std::string, std::pair<double, std::size_t>> sums;  // spec -> (cost, layers having it)
    for (const auto& l : spec.layers)
        for (const auto& c : l.candidates) {
            sums[c.spec].first += c.cost;
            ++sums[c.spec].second;
        }
    for (const auto& [text, sum] : sums) {
        if (sum.second != spec.layers.size()) continue;
        double bpw = 0;
        try {
            bpw = estimate_plan_bits(reg, uniform_plan(layers, CodecSpec::parse(text))).bits_per_weight();
        } catch (const Error&) {
            continue;
        }
        if (bpw > maxBpw * (1 + 1e-12)) continue;  // the same setting as the run costs the same bits
        if (best.spec.isEmpty() || sum.first < best.predictedKl)
            best = {QString::fromStdString(text), bpw, sum.first};
    }
    return best;
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
