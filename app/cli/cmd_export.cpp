// quench-cli export SOURCE --format packed|hf|gguf --out PATH: writes a model out for runtimes. SOURCE is a
// run, "study.h5:run-0003" (or "study.h5" for its newest run that stored tensors), whose quantized tensors
// go into the export as the run made them; or a model directory, exported as it is. Packed keeps the codecs'
// own codes; hf and gguf hold the dequantized weights, gguf re-encoded into the ggml type nearest in bits to
// each layer's codec (or the types asked for). The size estimate the workbench's export dialog shows is
// printed beside the size written; with --record FILE.h5 the export is recorded as a run, as the workbench
// records it.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "io/run_store.h"
#include "jobs/alloc_records.h"
#include "jobs/recorded_jobs.h"
#include "model/llama_model.h"
#include "output.h"
#include "run_recording.h"

namespace quench::cli {
namespace {

struct ExportOpts {
    std::string source, format, out, dtype = "f16", type, record;
    std::vector<std::string> tensor_types;
    bool replace = false;
};

void run_export(const ExportOpts& o, const GlobalOptions& g, ProgressSink& progress, RunWriter* run) {
    // A run's model with its quantized layers in, as the run left them; or a model directory as it is.
    QuantizedRun m;
    if (is_run_ref(o.source)) {
        m = load_quantized_run(o.source, &progress);
    } else {
        if (o.format == "packed")
            throw Error(o.source + ": a model directory has no quantized tensors to pack; export a "
                                   "quantize run (FILE.h5:RUN) instead");
        m.model = load_model(o.source, &progress);
        m.ref = o.source;
    }
    ExportJobOptions eo;
    eo.format = export_format_from_name(o.format);
    eo.out = o.out;
    eo.replace = o.replace;
    eo.hf_dtype = o.dtype == "bf16" ? DType::BF16 : DType::F16;
    eo.gguf_type = o.type;
    eo.gguf_tensor_types = o.tensor_types;
    const ExportJobResult r = export_job(*m.model, m.current, eo, &progress, run);
    nlohmann::json j = {{"source", m.ref}, {"format", o.format}, {"out", o.out}, {"bytes", r.bytes},
                        {"estimated_bytes", r.estimated_bytes}};
    if (eo.format == ExportFormat::Packed) {
        j.update({{"ideal_bytes", r.packed.ideal_bytes()}, {"quantized_tensors", r.packed.quantized_tensors},
                  {"copied_tensors", r.packed.copied_tensors}, {"total_bpw", r.packed.total_bits_per_weight()}});
    } else if (eo.format == ExportFormat::Gguf) {
        j.update({{"tensors", r.gguf.tensors.size()}, {"file_type", r.gguf.file_type}, {"tokenizer", r.gguf.tokenizer_model}});
        for (const auto& f : r.gguf.fallbacks)
            j["fallbacks"].push_back({{"tensor", f.tensor}, {"requested", ggml_type_name(f.requested)},
                                      {"used", ggml_type_name(f.used)}, {"reason", f.reason}});
        j["notes"] = r.gguf.notes;
    } else {
        j.update({{"tensors", r.hf.tensors}, {"dtype", o.dtype}});
    }
    if (g.json) {
        std::cout << j.dump(2) << "\n";
        return;
    }
    std::cout << "wrote " << o.out << " (" << o.format << ", " << fmt_bytes(double(r.bytes)) << "; estimated "
              << fmt_bytes(r.estimated_bytes) << ") from " << m.ref << "\n";
    for (const auto& f : j.value("fallbacks", nlohmann::json::array()))
        std::cout << "  " << f["tensor"].get<std::string>() << ": " << f["requested"].get<std::string>() << " -> "
                  << f["used"].get<std::string>() << " (" << f["reason"].get<std::string>() << ")\n";
    for (const auto& note : j.value("notes", nlohmann::json::array()))
        std::cout << "  note: " << note.get<std::string>() << "\n";
    if (eo.format == ExportFormat::Packed)
        std::cout << m.current.tensors.size() << " quantized tensors at " << fmt_num(r.packed.total_bits_per_weight(), 3)
                  << " bits per weight; " << fmt_num(100.0 * (double(r.bytes) / r.packed.ideal_bytes() - 1), 2)
                  << " % above the ideal size\n";
}

}  // namespace

Command add_export_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("export", "Write a quantized run (or a model) as a packed, HF or GGUF checkpoint");
    auto o = std::make_shared<ExportOpts>();
    sub->add_option("source", o->source, "FILE.h5[:RUN] (a quantize run) or a model directory")->required();
    sub->add_option("--format", o->format,
                    "packed: Quench's packed checkpoint; hf: dequantized FP16/BF16 safetensors; gguf: llama.cpp")
        ->required()
        ->check(CLI::IsMember({"packed", "hf", "gguf"}));
    sub->add_option("--out", o->out, "Output directory (a .gguf file for gguf), created complete or not at all")->required();
    sub->add_option("--dtype", o->dtype, "hf: f16 or bf16")->check(CLI::IsMember({"f16", "bf16"}));
    sub->add_option("--type", o->type, "gguf: type of every weight (default: nearest to each layer's codec, else f16)");
    sub->add_option("--tensor-type", o->tensor_types, "gguf: NAME=TYPE for one tensor (GGUF name, e.g. output.weight=q6_k)");
    sub->add_flag("--replace", o->replace, "Replace an earlier export (or, for gguf, an existing file) at --out");
    sub->add_option("--record", o->record, "Project file (.h5) to record the export in as a run; created when absent");
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->record, kExportRun, 0, g, [&](RunWriter* run) { run_export(*o, g, progress, run); });
            }};
}

}  // namespace quench::cli
