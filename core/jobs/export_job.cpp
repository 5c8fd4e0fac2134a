// The export job: the model as it stands written as a packed, HF or GGUF checkpoint, and the run it records.
#include "common/error.h"
#include "common/progress.h"
#include "io/run_store.h"
#include "jobs/recorded_job_parts.h"
#include "jobs/recorded_jobs.h"
#include "model/llama_model.h"

namespace quench {

using namespace detail;

ExportJobResult export_job(const LlamaModel& model, const QuantizeResult& current, const ExportJobOptions& o,
                           ProgressSink* progress, RunWriter* run) {
    ProgressSink& p = progress ? *progress : null_progress();
    if (o.out.empty()) throw Error("export: choose where to write");
    check_exportable(current.tensors, o.format, "export");  // what each layer's codec row allows
    GgufExportOptions go;
    if (o.format == ExportFormat::Gguf) go = gguf_export_options(model, current.tensors, o.gguf_type, o.gguf_tensor_types);
    go.replace = o.replace;
    ExportJobResult out;
    out.estimated_bytes = estimate_export_bytes(model, current.tensors, o.format, go);
    {
        SubProgress hashing(p, 0, 0.02);
        record_model(run, model, hashing);
    }
    // The exporter's report as run attributes (and GGUF's type fallbacks as a table).
    Attrs report{{"format", std::string(export_format_name(o.format))}, {"out", o.out},
                 {"replace", int64_t(o.replace ? 1 : 0)}};
    Table fallbacks;
    ExportOptions eo;
    eo.replace = o.replace;
    SubProgress wp(p, 0.02, 1.0);
    switch (o.format) {
    case ExportFormat::Packed: {
        out.packed = write_packed_checkpoint(model, current.tensors, o.out, &wp, eo);
        out.bytes = out.packed.file_bytes;
        report.insert({{"quantized_tensors", int64_t(out.packed.quantized_tensors)},
                       {"copied_tensors", int64_t(out.packed.copied_tensors)},
                       {"packed_bpw", out.packed.total_bits_per_weight()},
                       {"ideal_bytes", out.packed.ideal_bytes()}});
        break;
    }
    case ExportFormat::Hf: {
        out.hf = export_hf_dequantized(model, o.out, o.hf_dtype, &wp, eo);
        out.bytes = out.hf.file_bytes;
        report.insert({{"dtype", std::string(o.hf_dtype == DType::BF16 ? "bf16" : "f16")},
                       {"tensors", int64_t(out.hf.tensors)}});
        break;
    }
    case ExportFormat::Gguf: {
        out.gguf = export_gguf(model, o.out, go, &wp);
        out.bytes = out.gguf.file_bytes;
        report.insert({{"type", o.gguf_type.empty() ? std::string("per codec") : o.gguf_type},
                       {"tensors", int64_t(out.gguf.tensors.size())},
                       {"file_type", int64_t(out.gguf.file_type)},
                       {"tokenizer", out.gguf.tokenizer_model}});
        if (!o.gguf_tensor_types.empty()) report["tensor_types"] = joined(o.gguf_tensor_types, ";");
        std::vector<std::string> tensor, requested, used, reason;
        for (const auto& f : out.gguf.fallbacks) {
            tensor.push_back(f.tensor);
            requested.push_back(ggml_type_name(f.requested));
            used.push_back(ggml_type_name(f.used));
            reason.push_back(f.reason);
        }
        fallbacks.add("tensor", tensor).add("requested", requested).add("used", used).add("reason", reason);
        break;
    }
    }
    report["bytes"] = int64_t(out.bytes);
    report["estimated_bytes"] = out.estimated_bytes;
    if (run) {
        run->set_attrs(report);
        if (fallbacks.rows() > 0) run->write_table("gguf_fallbacks", fallbacks);
        record_current_layers(*run, current);  // the layers the export holds quantized
    }
    return out;
}

}  // namespace quench
