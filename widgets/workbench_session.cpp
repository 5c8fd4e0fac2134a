// ATen before any Qt header: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <ATen/ATen.h>

#include "workbench_session.h"

#include <QFileInfo>

#include <cmath>
#include <map>
#include <set>

#include "alloc/allocation.h"
#include "analysis/model_eval.h"
#include "analysis/sensitivity.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "io/gguf_export.h"
#include "io/hf_export.h"
#include "io/packed_checkpoint.h"
#include "io/run_records.h"
#include "io/run_store.h"
#include "jobs/progress.h"
#include "job_queue.h"
#include "model/dtype.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/model_quantizer.h"

#include "session_records.h"
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

double WorkbenchSession::estimateBitsPerWeight(const std::string& spec, const std::vector<std::size_t>& layers) const {
    auto codec = make_codec(spec);
    const auto& reg = this->layers();
    // Layers the setting cannot take are named, all of them, before anything runs.
    const std::vector<std::string> refused = refused_layers(reg, uniform_plan(layers, codec->spec()));
    if (!refused.empty()) throw quench::Error(refusal_text(refused, layers.size()));
    if (layers.empty()) {  // no layer chosen: a representative 4096 x 4096 weight
        return codec->estimate_bits(4096, 4096).total_bits_per_weight;
    }
    // Shared parts once, as the run that follows will count them.
    return estimate_plan_bits(reg, uniform_plan(layers, codec->spec())).bits_per_weight();
}

double WorkbenchSession::estimateExportBytes(const ExportRequest& request) const {
    if (!s_->model) return 0;
    const auto& model = *s_->model;
    const auto& reg = model.layers();
    std::map<std::string, std::size_t> layer_of_weight;
    for (std::size_t i = 0; i < reg.size(); ++i) layer_of_weight[reg.at(i).weight_name()] = i;
    double bytes = 0;
    std::set<const uint8_t*> stored;  // tied tensors (lm_head = embedding) are written once, as exporters do
    for (const auto& name : model.tensor_names()) {
        const auto& info = model.checkpoint().info(name);
        const double n = double(info.numel());
        const auto layer = layer_of_weight.find(name);
        const QuantizedTensor* q = nullptr;
        bool replaced = false;
        if (layer != layer_of_weight.end()) {
            auto t = s_->tensors.find(layer->second);
            if (t != s_->tensors.end()) q = &t->second;
            replaced = model.is_replaced(layer->second);
        }
        if (!q && !replaced && !stored.insert(model.checkpoint().stored_bytes(name)).second) continue;
        switch (request.format) {
        case ExportFormat::Packed:
            bytes += q ? n * q->total_bits_per_weight() / 8.0
                       : double(info.nbytes());
            break;
        case ExportFormat::Hf:
            bytes += n * 2.0;
            break;
        case ExportFormat::Gguf: {
            if (info.shape.size() != 2) {
                bytes += n * 4.0;  // norms stay F32
                break;
            }
            GgmlType type = GgmlType::F16;
            if (!request.ggufType.isEmpty()) {
                if (auto t = ggml_type_from_name(utf8(request.ggufType))) type = *t;
            } else if (q) {
                type = gguf_type_for_codec(q->spec.to_string(), q->rows, q->cols);
            }
            type = gguf_fitting_type(type, info.shape[1]);
            bytes += n * ggml_type_info(type).bits_per_weight() / 8.0;
            break;
        }
        }
    }
    return bytes;
}

JobRunner* WorkbenchSession::loadModel(const QString& dir) {
    struct Out {
        std::shared_ptr<LlamaModel> model;
        std::shared_ptr<Tokenizer> tok;
    };
    auto out = std::make_shared<Out>();
    const std::string path = utf8(dir);
    JobRunner* job = jobs_->enqueue(tr("Load %1").arg(QFileInfo(dir).fileName()), [out, path](ProgressSink& p) {
        out->model = LlamaModel::load(path, &p);
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
    QuantizeResult result;
    bool has_kl = false;
    KlReport kl;
    std::vector<int32_t> kl_tokens;
    std::shared_ptr<std::string> run_id = std::make_shared<std::string>();
};

namespace {

// The quantize job: restore, quantize the plan, evaluate when there is evaluation text, and record the run
// in the project file when there is one (as `quench-cli quantize --out`).
// kind: "quantize" (one setting) or "apply" (an allocation's per-layer settings), as the CLI records them.
void run_quantize(LlamaModel& model, const Tokenizer& tok, const std::vector<LayerPlan>& plan, const DataSettings& data,
                  const std::string& project, const char* kind, const std::string& label, QuantizeOut& out,
                  ProgressSink& p) {
    const auto work = [&](RunWriter* run) {
        model.restore_all();
        const auto calib = file_tokens(tok, data.calibPath, data.calibTokens);
        QuantizeOptions qo;
        qo.capture.ctx = data.context;
        const bool eval = !data.evalPath.isEmpty();
        SubProgress qp(p, 0, eval ? 0.7 : 0.95);
        out.result = quantize_model_layers(model, plan, calib, qo, &qp);
        if (eval) {
            EvalOptions eo;
            eo.ctx = data.context;
            eo.max_tokens = data.evalTokens;
            SubProgress ep(p, 0.7, 0.95);
            out.kl_tokens = file_tokens(tok, data.evalPath, 0);
            out.kl = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, out.kl_tokens, eo, tok.bos_id(), &ep);
            out.kl_tokens.resize(std::min<std::size_t>(out.kl_tokens.size(), std::size_t(out.kl.protocol.text_tokens)));
            out.has_kl = true;
        }
        if (!run) return;
        p.report(0.95, "recording the run");
        std::vector<DataProvenance> dp;
        if (!data.calibPath.isEmpty()) dp.push_back(data_provenance("calib", utf8(data.calibPath), int64_t(calib.size())));
        if (eval)
            dp.push_back(data_provenance("eval", utf8(data.evalPath), out.kl.protocol.text_tokens, out.kl.protocol.describe()));
        record_quantize(*run, model, dp, out.result, eval ? &out.kl : nullptr, label);
    };
    try {
        run_recorded(project, kind, label, out.run_id, work);
    } catch (...) {
        model.restore_all();  // failed, cancelled or not recorded: no half-quantized model stays behind
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
        run_quantize(*state->model, *state->tok, uniform_plan(chosen, cs), data, project, "quantize", cs.to_string(),
                     *out, p);
    });
    connectQuantizeJob(job, state, out, tr("Quantize"), data.evalPath);
    announceRun(job, projectPath_, out->run_id);
    return job;
}

void WorkbenchSession::connectQuantizeJob(JobRunner* job, std::shared_ptr<State> state, std::shared_ptr<QuantizeOut> out,
                                          const QString& source, const QString& evalPath) {
    connect(job, &JobRunner::finished, this, [this, state, out, source, evalPath] {
        state->total_bpw = out->result.total_bits_per_weight();  // before the layers are moved out
        state->results = std::move(out->result.layers);
        state->tensors = std::move(out->result.tensors);
        state->has_kl = out->has_kl;
        state->kl = std::move(out->kl);
        state->kl_tokens = std::move(out->kl_tokens);
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
    // An allocation names layers and specs; quantize each chosen layer with its own setting.
    std::vector<std::pair<std::size_t, std::string>> choices;
    for (const auto& c : allocation.layers) {
        if (c.excluded) continue;
        if (auto idx = layers().index_of(c.name)) choices.emplace_back(*idx, c.spec);
    }
    auto state = s_;
    const DataSettings data = data_;
    const std::string project = utf8(projectPath_);
    auto out = std::make_shared<QuantizeOut>();
    const double bpw = allocation.bits_per_weight;
    JobRunner* job = jobs_->enqueue(tr("Apply allocation (%1 bpw)").arg(bpw, 0, 'f', 3),
                                    [state, choices, data, project, out, bpw](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        std::vector<LayerPlan> plan;
        for (const auto& [idx, spec] : choices) plan.push_back({idx, CodecSpec::parse(spec)});
        run_quantize(*state->model, *state->tok, plan, data, project, "apply",
                     "allocation at " + std::to_string(bpw) + " bpw", *out, p);
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
    JobRunner* job = jobs_->enqueue(tr("Sensitivity: %1 layers x %2 settings").arg(layers.size()).arg(candidates.size()),
                                    [state, data, measured, cands, chosen, project, runId](ProgressSink& p) {
        if (!state->model) throw Error("open a model first");
        if (chosen.empty()) throw Error("select at least one layer to measure");
        if (data.calibPath.isEmpty()) throw Error("sensitivity needs calibration text (Data panel)");
        std::vector<std::string> canon, names;
        for (const auto& c : cands) canon.push_back(CodecSpec::parse(c).to_string());
        auto& model = *state->model;
        for (std::size_t l : chosen) names.push_back(model.layers().at(l).name);
        run_recorded(project, "sensitivity", "sensitivity of " + std::to_string(chosen.size()) + " layers", runId,
                     [&](RunWriter* run) {
            const auto calib = file_tokens(*state->tok, data.calibPath, data.calibTokens);
            const QString klPath = data.evalPath.isEmpty() ? data.calibPath : data.evalPath;
            const auto kl = file_tokens(*state->tok, klPath, data.evalTokens);
            SensitivityOptions so;
            so.ctx = data.context;
            // measure_sensitivity wants the original weights; the quantized ones go back afterwards.
            model.restore_all();
            SensitivityStats stats;
            try {
                stats = measure_sensitivity(model, chosen, canon, calib, kl, state->tok->bos_id(), so, *measured, &p);
            } catch (...) {
                reapply(model, state->tensors);
                throw;
            }
            reapply(model, state->tensors);
            if (run)
                record_sensitivity(*run, model,
                                   {data_provenance("calib", utf8(data.calibPath), int64_t(calib.size())),
                                    data_provenance("kl", utf8(klPath), int64_t(kl.size()))},
                                   *measured, stats, canon, names);
        });
    });
    connect(job, &JobRunner::finished, this, [this, state, measured, key] {
        state->measurements = std::move(*measured);
        state->measurements_key = key;
        if (state == s_) emit sensitivityMeasured();
    });
    // A cancelled or failed job keeps the pairs it finished (each is complete when stored): the views show
    // them and a re-run measures only the rest.
    const auto keepFinished = [this, state, measured, key] {
        const bool nothingNew = measured->empty() ||
                                (state->measurements_key == key && measured->size() <= state->measurements.size());
        if (nothingNew) return;
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
        run_recorded(project, "eval", "evaluate KL", runId, [&](RunWriter* run) {
            EvalOptions eo;
            eo.ctx = data.context;
            eo.max_tokens = data.evalTokens;
            auto& model = *state->model;
            *tokens = file_tokens(*state->tok, data.evalPath, 0);
            *out = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, *tokens, eo, state->tok->bos_id(), &p);
            tokens->resize(std::min<std::size_t>(tokens->size(), std::size_t(out->protocol.text_tokens)));
            if (run)
                record_eval(*run, model,
                            data_provenance("eval", utf8(data.evalPath), out->protocol.text_tokens, out->protocol.describe()),
                            *out, current_result(state->results, state->tensors));
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
        const auto& model = *state->model;
        const std::string path = utf8(request.path);
        if (path.empty()) throw Error("export: choose where to write");
        const char* format = request.format == ExportFormat::Packed ? "packed" : request.format == ExportFormat::Hf ? "hf" : "gguf";
        run_recorded(project, "export", std::string("export ") + format + " to " + path, runId, [&](RunWriter* run) {
            ExportOptions eo;
            eo.replace = request.replace;
            // The exporter's report as run attributes (and GGUF's type fallbacks as a table).
            Attrs report{{"format", std::string(format)}, {"out", path}, {"replace", int64_t(request.replace)}};
            Table fallbacks;
            switch (request.format) {
            case ExportFormat::Packed: {
                const auto r = write_packed_checkpoint(model, state->tensors, path, &p, eo);
                *bytes = r.file_bytes;
                report.insert({{"quantized_tensors", int64_t(r.quantized_tensors)}, {"copied_tensors", int64_t(r.copied_tensors)},
                               {"packed_bpw", r.total_bits_per_weight()}, {"ideal_bytes", r.ideal_bytes()}});
                break;
            }
            case ExportFormat::Hf: {
                const auto r = export_hf_dequantized(model, path, request.bf16 ? DType::BF16 : DType::F16, &p, eo);
                *bytes = r.file_bytes;
                report.insert({{"dtype", std::string(request.bf16 ? "bf16" : "f16")}, {"tensors", int64_t(r.tensors)}});
                break;
            }
            case ExportFormat::Gguf: {
                GgufExportOptions go;
                go.replace = request.replace;
                if (!request.ggufType.isEmpty()) {
                    const auto t = ggml_type_from_name(utf8(request.ggufType));
                    if (!t) throw Error("export: unknown GGUF type '" + utf8(request.ggufType) + "'");
                    go.default_type = *t;
                } else {
                    for (const auto& [index, q] : state->tensors) {
                        const auto& l = model.layers().at(index);
                        go.tensor_types[gguf_tensor_name(l.weight_name())] =
                            gguf_type_for_codec(q.spec.to_string(), l.out_features, l.in_features);
                    }
                }
                const auto r = export_gguf(model, path, go, &p);
                *bytes = r.file_bytes;
                report.insert({{"type", request.ggufType.isEmpty() ? std::string("per codec") : utf8(request.ggufType)},
                               {"tensors", int64_t(r.tensors.size())}, {"file_type", int64_t(r.file_type)},
                               {"tokenizer", r.tokenizer_model}});
                std::vector<std::string> tensor, requested, used, reason;
                for (const auto& f : r.fallbacks) {
                    tensor.push_back(f.tensor);
                    requested.push_back(ggml_type_name(f.requested));
                    used.push_back(ggml_type_name(f.used));
                    reason.push_back(f.reason);
                }
                fallbacks.add("tensor", tensor).add("requested", requested).add("used", used).add("reason", reason);
                break;
            }
            }
            report["bytes"] = int64_t(*bytes);
            if (run) record_export(*run, model, report, &fallbacks, current_result(state->results, state->tensors));
        });
    });
    connect(job, &JobRunner::finished, this, [this, request, bytes] { emit exported(request.path, qint64(*bytes)); });
    announceRun(job, projectPath_, runId);
    return job;
}

}  // namespace quench::gui
