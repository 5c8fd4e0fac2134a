// quench-cli export SOURCE --format packed|hf|gguf --out PATH: writes a model out for runtimes. SOURCE is a
// run, "study.h5:run-0003" (or "study.h5" for its newest run that stored tensors), whose quantized tensors
// go into the export as the run made them; or a model directory, exported as it is. Packed keeps the codecs'
// own codes; hf and gguf hold the dequantized weights, gguf re-encoded into the ggml type nearest in bits to
// each layer's codec (or the types asked for).
#include <sys/stat.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common/error.h"
#include "io/gguf_export.h"
#include "io/hf_export.h"
#include "io/packed_checkpoint.h"
#include "io/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "output.h"
#include "quant/codec.h"

namespace quench::cli {
namespace {

bool is_regular_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

struct Source {
    std::string store, run;  // a run of a project file...
    std::string model_dir;   // ...or a model directory
};

Source parse_source(const std::string& arg) {
    if (is_regular_file(arg)) return {arg, "", ""};
    const auto colon = arg.rfind(':');
    if (colon != std::string::npos && is_regular_file(arg.substr(0, colon)))
        return {arg.substr(0, colon), arg.substr(colon + 1), ""};
    return {"", "", arg};
}

// The newest complete run that stored its quantized tensors: the one a user who just quantized means.
std::string newest_run_with_tensors(const RunStore& store) {
    const auto runs = store.runs();
    for (auto it = runs.rbegin(); it != runs.rend(); ++it)
        if (it->status == RunStatus::Complete && !store.read(it->id).tensors.empty()) return it->id;
    throw Error(store.path() + ": no complete run with stored quantized tensors (quantize with --out writes them)");
}

struct Loaded {
    std::unique_ptr<LlamaModel> model;
    std::map<std::size_t, QuantizedTensor> tensors;  // by registry index, as QuantizeResult::tensors
    std::string label;
};

// Loads the run's model and puts its quantized weights in, dequantized, as the run left them.
Loaded load_run(const Source& src, ProgressSink* progress) {
    const auto store = RunStore::open(src.store);
    const std::string id = src.run.empty() ? newest_run_with_tensors(store) : src.run;
    const RunData run = store.read(id);
    if (run.summary.status != RunStatus::Complete)
        throw Error(run.where + ": the run is " + run_status_name(run.summary.status) + ", not complete");
    if (run.tensors.empty())
        throw Error(run.where + ": the run stored no quantized tensors (quantize with --out writes them)");
    Loaded out;
    out.label = src.store + ":" + id;
    out.model = LlamaModel::load(read_model_provenance(run).path, progress);
    for (const auto& name : run.tensors) {
        const auto index = out.model->layers().index_of(name);
        if (!index) throw Error(run.where + ": tensor '" + name + "' is not a layer of " + out.model->dir());
        QuantizedTensor q = from_stored(store.read_tensor(id, name));
        out.model->replace_weight(*index, make_codec(q.spec)->dequantize(q));
        out.tensors.emplace(*index, std::move(q));
    }
    return out;
}

GgmlType parse_ggml_type(const std::string& name) {
    const auto t = ggml_type_from_name(name);
    if (!t) throw Error("--type/--tensor-type: unknown GGUF type '" + name + "' (f32, f16, q8_0, q4_0, q4_1, q5_0, "
                        "q5_1, q2_k, q3_k, q4_k, q5_k, q6_k)");
    return *t;
}

// Per-tensor types: --tensor-type NAME=TYPE first, then each quantized layer's nearest type by bits, then
// --type (F16 when not given) for the rest.
GgufExportOptions gguf_options(const Loaded& m, const std::string& type, const std::vector<std::string>& overrides) {
    GgufExportOptions opt;
    if (!type.empty()) opt.default_type = parse_ggml_type(type);
    for (const auto& [index, q] : m.tensors)
        if (type.empty())
            opt.tensor_types[gguf_tensor_name(m.model->layers().at(index).name + ".weight")] =
                gguf_type_for_codec(q.spec.to_string(), q.rows, q.cols);
    for (const auto& o : overrides) {
        const auto eq = o.find('=');
        if (eq == std::string::npos) throw Error("--tensor-type '" + o + "': expected NAME=TYPE");
        opt.tensor_types[o.substr(0, eq)] = parse_ggml_type(o.substr(eq + 1));
    }
    return opt;
}

}  // namespace

Command add_export_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("export", "Write a quantized run (or a model) as a packed, HF or GGUF checkpoint");
    struct Opts {
        std::string source, format, out, dtype = "f16", type;
        std::vector<std::string> tensor_types;
        bool replace = false;
    };
    auto o = std::make_shared<Opts>();
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
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                const Source src = parse_source(o->source);
                Loaded m;
                if (src.model_dir.empty()) {
                    m = load_run(src, &progress);
                } else {
                    if (o->format == "packed")
                        throw Error(o->source + ": a model directory has no quantized tensors to pack; export a "
                                                "quantize run (FILE.h5:RUN) instead");
                    m.model = LlamaModel::load(src.model_dir, &progress);
                    m.label = src.model_dir;
                }
                ExportOptions eo;
                eo.replace = o->replace;
                nlohmann::json j = {{"source", m.label}, {"format", o->format}, {"out", o->out}};
                if (o->format == "packed") {
                    const auto r = write_packed_checkpoint(*m.model, m.tensors, o->out, &progress, eo);
                    j.update({{"bytes", r.file_bytes}, {"ideal_bytes", r.ideal_bytes()},
                              {"quantized_tensors", r.quantized_tensors}, {"copied_tensors", r.copied_tensors},
                              {"total_bpw", r.total_bits_per_weight()}});
                } else if (o->format == "gguf") {
                    GgufExportOptions go = gguf_options(m, o->type, o->tensor_types);
                    go.replace = o->replace;
                    const auto r = export_gguf(*m.model, o->out, go, &progress);
                    j.update({{"bytes", r.file_bytes}, {"tensors", r.tensors.size()}, {"file_type", r.file_type},
                              {"tokenizer", r.tokenizer_model}});
                    for (const auto& f : r.fallbacks)
                        j["fallbacks"].push_back({{"tensor", f.tensor}, {"requested", ggml_type_name(f.requested)},
                                                  {"used", ggml_type_name(f.used)}, {"reason", f.reason}});
                    j["notes"] = r.notes;
                } else {
                    const DType dt = o->dtype == "bf16" ? DType::BF16 : DType::F16;
                    const auto r = export_hf_dequantized(*m.model, o->out, dt, &progress, eo);
                    j.update({{"bytes", r.file_bytes}, {"tensors", r.tensors}, {"dtype", o->dtype}});
                }
                if (g.json) {
                    std::cout << j.dump(2) << "\n";
                    return;
                }
                std::cout << "wrote " << o->out << " (" << o->format << ", " << fmt_bytes(j["bytes"].get<double>())
                          << ") from " << m.label << "\n";
                for (const auto& f : j.value("fallbacks", nlohmann::json::array()))
                    std::cout << "  " << f["tensor"].get<std::string>() << ": " << f["requested"].get<std::string>()
                              << " -> " << f["used"].get<std::string>() << " (" << f["reason"].get<std::string>() << ")\n";
                for (const auto& note : j.value("notes", nlohmann::json::array()))
                    std::cout << "  note: " << note.get<std::string>() << "\n";
                if (o->format == "packed")
                    std::cout << m.tensors.size() << " quantized tensors at " << fmt_num(j["total_bpw"].get<double>(), 3)
                              << " bits per weight; " << fmt_num(100.0 * (j["bytes"].get<double>() / j["ideal_bytes"].get<double>() - 1), 2)
                              << " % above the ideal size\n";
            }};
}

}  // namespace quench::cli
