// No Qt here: only core's record writers, called as app/cli does.
#include "session_records.h"

#include "analysis/model_eval.h"
#include "analysis/sensitivity.h"
#include "common/error.h"
#include "io/alloc_records.h"
#include "io/run_records.h"
#include "qat/qat_trainer.h"
#include "quant/model_quantizer.h"

namespace quench::gui {

namespace {

std::string joined(const std::vector<std::string>& parts, const std::string& sep) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}

// Model provenance hashes the model files without a progress sink: the job's bar must not restart.
void write_model(RunWriter& run, const LlamaModel& model) { write_model_provenance(run, model_provenance(model)); }

}  // namespace

std::string gui_command(const std::string& what) { return "quench (GUI): " + what; }

void run_recorded(const std::string& project, const std::string& kind, const std::string& what,
                  std::shared_ptr<std::string> run_id, const std::function<void(RunWriter*)>& work) {
    quench::run_recorded(project, current_run_info(kind, gui_command(what)), work, [&](const std::string& id) {
        if (run_id) *run_id = id;
    });
}

void record_quantize(RunWriter& run, const LlamaModel& model, const std::vector<DataProvenance>& data,
                     const QuantizeResult& result, const KlReport* kl, const std::string& codec) {
    run.set_attrs({{"codec", codec}});
    write_model(run, model);
    write_data_provenance(run, data);
    write_quantize_result(run, result, true);
    run.set_attr("total_bpw", result.total_bits_per_weight());
    if (kl) write_kl_report(run, *kl);
}

void record_sensitivity(RunWriter& run, const LlamaModel& model, const std::vector<DataProvenance>& data,
                        const Measurements& m, const SensitivityStats& stats, const std::vector<std::string>& candidates,
                        const std::vector<std::string>& layers) {
    write_model(run, model);
    write_data_provenance(run, data);
    write_measurements(run, m);
    run.set_attrs({{"candidates", joined(candidates, ";")}, {"layers", joined(layers, ",")}, {"proxy", int64_t(0)},
                   {"quantize_calls", stats.quantize_calls}, {"kl_evals", stats.kl_evals}, {"reused", stats.reused}});
}

void record_eval(RunWriter& run, const LlamaModel& model, const DataProvenance& text, const KlReport& kl,
                 const QuantizeResult& current) {
    write_model(run, model);
    write_data_provenance(run, {text});
    write_kl_report(run, kl);
    run.set_attr("quantized_layers", int64_t(current.layers.size()));
    if (current.layers.empty()) return;
    // Which layers the evaluated model had quantized, and how (their tensors are in the quantize run).
    write_quantize_result(run, current, false);
    run.set_attr("total_bpw", current.total_bits_per_weight());
}

void record_export(RunWriter& run, const LlamaModel& model, const Attrs& report, const Table* fallbacks,
                   const QuantizeResult& current) {
    write_model(run, model);
    run.set_attrs(report);
    if (fallbacks && fallbacks->rows() > 0) run.write_table("gguf_fallbacks", *fallbacks);
    if (current.layers.empty()) return;
    write_quantize_result(run, current, false);
    run.set_attr("total_bpw", current.total_bits_per_weight());
}

void record_qat(RunWriter& run, const LlamaModel& model, const std::vector<DataProvenance>& data,
                const QatResult& r, const QuantizeResult& trained, const KlReport* report, const Attrs& settings) {
    run.set_attrs(settings);
    write_model(run, model);
    write_data_provenance(run, data);
    write_quantize_result(run, trained, true);
    Table loss;
    loss.add("step", r.steps).add("block", r.blocks).add("loss", r.losses).add("lr", r.lrs);
    run.write_table("qat_loss", loss);
    Table kl;
    kl.add("step", r.kl_steps).add("kl", r.kl_values, "nats");
    run.write_table("qat_kl", kl);
    if (report) write_kl_report(run, *report);
    run.set_attrs({{"tokens_used", r.tokens_used}, {"steps", r.total_steps}, {"resumed_from", r.resumed_from},
                   {"total_bpw", trained.total_bits_per_weight()}});
}

}  // namespace quench::gui
