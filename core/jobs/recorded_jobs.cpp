// quantize, apply, sensitivity and eval jobs, and a quantize run loaded back as a model (export_job.cpp and
// qat_job.cpp hold the other two kinds).
#include "jobs/recorded_jobs.h"

#include <sys/stat.h>

#include <algorithm>

#include "alloc/allocation.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "io/run_store.h"
#include "jobs/alloc_records.h"
#include "jobs/allocation_sweep.h"
#include "jobs/recorded_job_parts.h"
#include "jobs/run_records.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/dequantized_layers.h"
#include "quant/spilled_parts.h"

namespace quench {

// ---------------------------------------------------------------------------------------------- shared parts

namespace detail {

std::string joined(const std::vector<std::string>& parts, const char* sep) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}

std::vector<int32_t> text_tokens(const Tokenizer& tok, const std::string& path, int64_t limit) {
    if (path.empty()) return {};
    return tokenize_text_file(tok, path, true, limit);
}

void record_model(RunWriter* run, const LlamaModel& model, ProgressSink& progress) {
    if (run) write_model_provenance(*run, model_provenance(model, &progress));
}

KlReport eval_against_original(const LlamaModel& model, const Tokenizer& tok, const std::string& text,
                               const EvalOptions& options, ProgressSink& progress, std::vector<int32_t>* scored) {
    std::vector<int32_t> tokens = text_tokens(tok, text, 0);
    KlReport kl = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, tokens, options, tok.bos_id(), &progress);
    if (scored) {
        tokens.resize(std::min<std::size_t>(tokens.size(), std::size_t(kl.protocol.text_tokens)));
        *scored = std::move(tokens);
    }
    return kl;
}

DataProvenance eval_provenance(const std::string& text, const KlReport& kl) {
    return data_provenance("eval", text, kl.protocol.text_tokens, kl.protocol.describe());
}

void record_current_layers(RunWriter& run, const QuantizeResult& current) {
    if (current.layers.empty()) return;
    write_quantize_result(run, current, false);
    run.set_attr("total_bpw", current.total_bits_per_weight());
}

}  // namespace detail

using namespace detail;

namespace {

// The quantize part of quantize_job and apply_job; the caller has recorded its own attributes.
QuantizeJobResult quantize_recorded(LlamaModel& model, const Tokenizer& tok, const std::vector<LayerPlan>& plan,
                                    const QuantizeJobOptions& o, ProgressSink* progress, RunWriter* run) {
    ProgressSink& p = progress ? *progress : null_progress();
    QuantizeJobResult out;
    model.restore_all();
    try {
        {
            SubProgress hashing(p, 0, 0.02);
            record_model(run, model, hashing);
        }
        const auto calib = text_tokens(tok, o.calib.path, o.calib.tokens);
        out.calib_tokens = int64_t(calib.size());
        const bool eval = !o.eval.empty();
        QuantizeOptions qo;
        qo.seed = o.seed;
        qo.capture.ctx = o.ctx;
        qo.calib_inputs = o.calib_inputs;
        SubProgress qp(p, 0.02, eval ? 0.7 : 0.98);
        out.result = quantize_model_layers(model, plan, calib, qo, &qp);
        if (eval) {
            EvalOptions eo;
            eo.ctx = o.ctx;
            eo.max_tokens = o.eval_tokens;
            SubProgress ep(p, 0.7, 0.98);
            out.kl = eval_against_original(model, tok, o.eval, eo, ep, &out.kl_tokens);
            out.has_kl = true;
        }
        if (!run) return out;
        p.report(0.98, "recording the run");
        std::vector<DataProvenance> data;
        if (!o.calib.path.empty()) data.push_back(data_provenance("calib", o.calib.path, out.calib_tokens));
        if (eval) data.push_back(eval_provenance(o.eval, out.kl));
        write_data_provenance(*run, data);
        write_quantize_result(*run, out.result, o.with_tensors);
        run->set_attr("total_bpw", out.result.total_bits_per_weight());
        if (!calib.empty()) run->set_attr("calib_inputs", std::string(calib_inputs_name(o.calib_inputs)));
        if (eval) write_kl_report(*run, out.kl);
    } catch (...) {
        model.restore_all();  // failed, cancelled or not recorded: no half-quantized model stays behind
        throw;
    }
    return out;
}

bool is_regular_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The newest complete run that stored its quantized tensors: the one a user who just quantized means.
std::string newest_run_with_tensors(const RunStore& store) {
    const auto runs = store.runs();
    for (auto it = runs.rbegin(); it != runs.rend(); ++it)
        if (it->status == RunStatus::Complete && !store.read(it->id).tensors.empty()) return it->id;
    throw Error(store.path() + ": no complete run with stored quantized tensors (quantize with --out writes them)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------- quantize, apply

QuantizeJobResult quantize_job(LlamaModel& model, const Tokenizer& tok, const std::vector<LayerPlan>& plan,
                               const QuantizeJobOptions& options, ProgressSink* progress, RunWriter* run) {
    if (run) {
        std::vector<std::string> specs, names;
        for (const auto& l : plan) {
            const std::string s = l.spec.to_string();
            if (std::find(specs.begin(), specs.end(), s) == specs.end()) specs.push_back(s);
            names.push_back(model.layers().at(l.layer).name);
        }
        run->set_attrs({{"codec", joined(specs, ";")}, {"layers", joined(names, ",")}});
    }
    return quantize_recorded(model, tok, plan, options, progress, run);
}

QuantizeJobResult apply_job(LlamaModel& model, const Tokenizer& tok, const Allocation& allocation,
                            const std::string& source, const QuantizeJobOptions& options, ProgressSink* progress,
                            RunWriter* run) {
    if (run) run->set_attrs({{"allocation", source}, {"predicted_kl", allocation.total_cost}});
    const std::vector<LayerPlan> plan = allocation_plan(model, allocation, source);
    return quantize_recorded(model, tok, plan, options, progress, run);
}

// ---------------------------------------------------------------------------------------------- sensitivity

SensitivityStats sensitivity_job(LlamaModel& model, const Tokenizer& tok, const SensitivityJobOptions& o,
                                 Measurements& m, ProgressSink* progress, RunWriter* run) {
    ProgressSink& p = progress ? *progress : null_progress();
    if (o.calib.path.empty()) throw Error("sensitivity: needs calibration text");
    std::vector<std::string> canon, names;
    for (const auto& c : o.candidates) canon.push_back(CodecSpec::parse(c).to_string());
    for (std::size_t l : o.layers) names.push_back(model.layers().at(l).name);
    {
        SubProgress hashing(p, 0, 0.02);
        record_model(run, model, hashing);
    }
    const auto calib = text_tokens(tok, o.calib.path, o.calib.tokens);
    const std::string kl_path = o.kl.path.empty() ? o.calib.path : o.kl.path;
    const auto kl = text_tokens(tok, kl_path, o.kl.tokens);
    model.restore_all();  // measure_sensitivity starts from the original weights
    SubProgress mp(p, 0.02, 1.0);
    const SensitivityStats stats = measure_sensitivity(model, o.layers, canon, calib, kl, tok.bos_id(), o.sensitivity, m, &mp);
    if (run) {
        write_data_provenance(*run, {data_provenance("calib", o.calib.path, int64_t(calib.size())),
                                     data_provenance("kl", kl_path, int64_t(kl.size()))});
        write_measurements(*run, m);
        run->set_attrs({{"candidates", joined(canon, ";")}, {"layers", joined(names, ",")},
                        {"proxy", int64_t(o.sensitivity.proxy ? 1 : 0)}, {"quantize_calls", stats.quantize_calls},
                        {"kl_evals", stats.kl_evals}, {"reused", stats.reused}});
    }
    return stats;
}

// ---------------------------------------------------------------------------------------------- eval

EvalJobResult eval_job(const LlamaModel& model, const Tokenizer& tok, const QuantizeResult& current,
                       const std::string& text, const EvalOptions& options, ProgressSink* progress, RunWriter* run) {
    ProgressSink& p = progress ? *progress : null_progress();
    if (text.empty()) throw Error("eval: needs an evaluation text");
    {
        SubProgress hashing(p, 0, 0.02);
        record_model(run, model, hashing);
    }
    EvalJobResult out;
    SubProgress ep(p, 0.02, 1.0);
    out.kl = eval_against_original(model, tok, text, options, ep, &out.tokens);
    if (run) {
        write_data_provenance(*run, {eval_provenance(text, out.kl)});
        write_kl_report(*run, out.kl);
        run->set_attr("quantized_layers", int64_t(current.layers.size()));
        record_current_layers(*run, current);  // which layers were quantized, and how
    }
    return out;
}

// ---------------------------------------------------------------------------------------------- runs as input

QuantizedRun load_quantized_run(const std::string& ref, ProgressSink* progress) {
    std::string file = ref, id;
    if (!is_regular_file(ref)) {
        const auto colon = ref.rfind(':');
        if (colon == std::string::npos || !is_regular_file(ref.substr(0, colon)))
            throw Error(ref + ": not a project file or FILE.h5:RUN");
        file = ref.substr(0, colon);
        id = ref.substr(colon + 1);
    }
    const auto store = RunStore::open(file);
    if (id.empty()) id = newest_run_with_tensors(store);
    const RunData run = store.read(id);
    if (run.summary.status != RunStatus::Complete)
        throw Error(run.where + ": the run is " + run_status_name(run.summary.status) + ", not complete");
    if (run.tensors.empty())
        throw Error(run.where + ": the run stored no quantized tensors (quantize with --out writes them)");
    QuantizedRun out;
    out.ref = file + ":" + id;
    out.model = load_model(read_model_provenance(run).path, progress);
    if (run.has_table("layers")) out.current.layers = read_layer_results(run);
    // A streamed (large) model's codes go to a temporary file as they are read, as the quantizer's do.
    std::unique_ptr<PartSpill> spill = out.model->streaming() ? std::make_unique<PartSpill>() : nullptr;
    for (const auto& name : run.tensors) {
        const auto index = out.model->layers().index_of(name);
        if (!index) throw Error(run.where + ": tensor '" + name + "' is not a layer of " + out.model->dir());
        QuantizedTensor q = from_stored(store.read_tensor(id, name));
        out.current.tensors.emplace(*index, spill ? spill->spill(q) : std::move(q));
    }
    replace_with_quantized(*out.model, out.current.tensors);
    return out;
}

}  // namespace quench
