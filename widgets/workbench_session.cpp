// ATen before any Qt header: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <ATen/ATen.h>

#include "workbench_session.h"

// The session's document half: what is loaded and measured, the estimates the panels show before a job
// runs, and the evaluations history. The jobs are in session_jobs.cpp and session_qat.cpp.
#include "common/error.h"
#include "io/gguf_export.h"
#include "jobs/model_quantizer.h"
#include "jobs/uniform_prediction.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"
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
    const auto best = best_measured_uniform(s_->measurements, this->layers(), layers, maxBpw);
    if (!best) return {};
    return {QString::fromStdString(best->spec), best->bits_per_weight, best->predicted_kl};
}

}  // namespace quench::gui
