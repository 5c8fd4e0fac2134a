#include "jobs/run_records.h"

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "analysis/model_eval.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/sha256.h"
#include "jobs/model_quantizer.h"
#include "model/llama_model.h"
#include "quant/quantized_tensor.h"
#include "quant/spilled_parts.h"

namespace quench {

std::string run_recorded(const std::string& project, const RunInfo& info, const std::function<void(RunWriter*)>& job,
                         const std::function<void(const std::string& id)>& begun) {
    if (project.empty()) {
        job(nullptr);
        return {};
    }
    RunWriter run = RunStore::create_or_open(project).begin_run(info);
    if (begun) begun(run.id());
    const auto end = [&run](const char* error) {
        try {
            error ? run.fail(error) : run.cancel();
        } catch (const std::exception&) {
        }
    };
    try {
        job(&run);
    } catch (const Cancelled&) {
        end(nullptr);
        throw;
    } catch (const std::exception& e) {
        end(e.what());
        throw;
    }
    run.finish();
    return run.id();
}

namespace fs = std::filesystem;

namespace {

// The value of a one-row table's column, naming the table when it has no rows.
double real_at0(const Table& t, const std::string& col) {
    const auto& v = t.reals(col);
    if (v.empty()) throw Error(t.where + ": no rows");
    return v[0];
}
int64_t int_at0(const Table& t, const std::string& col) {
    const auto& v = t.ints(col);
    if (v.empty()) throw Error(t.where + ": no rows");
    return v[0];
}

// EvalProtocol as columns of a one-row table, so a report's numbers and how they were measured stay together.
void add_protocol(Table& t, const EvalProtocol& p) {
    t.add("ctx", std::vector<int64_t>{p.ctx}, "tokens")
        .add("stride", std::vector<int64_t>{p.stride}, "tokens")
        .add("text_tokens", std::vector<int64_t>{p.text_tokens}, "tokens")
        .add("scored_tokens", std::vector<int64_t>{p.scored_tokens}, "tokens")
        .add("windows", std::vector<int64_t>{p.windows})
        .add("bos", std::vector<std::string>{p.bos_per_window ? "per-window" : "start"});
}

EvalProtocol read_protocol(const Table& t) {
    EvalProtocol p;
    p.ctx = int_at0(t, "ctx");
    p.stride = int_at0(t, "stride");
    p.text_tokens = int_at0(t, "text_tokens");
    p.scored_tokens = int_at0(t, "scored_tokens");
    p.windows = int_at0(t, "windows");
    const std::string bos = t.texts("bos").at(0);
    if (bos != "start" && bos != "per-window") throw Error(t.where + ": column 'bos': unknown value '" + bos + "'");
    p.bos_per_window = bos == "per-window";
    return p;
}

const std::map<c10::ScalarType, std::string>& dtype_names() {
    static const std::map<c10::ScalarType, std::string> names = {
        {torch::kUInt8, "uint8"},     {torch::kInt8, "int8"},   {torch::kInt16, "int16"},
        {torch::kInt32, "int32"},     {torch::kInt64, "int64"}, {torch::kFloat16, "float16"},
        {torch::kBFloat16, "bfloat16"}, {torch::kFloat32, "float32"}, {torch::kFloat64, "float64"}};
    return names;
}

}  // namespace

std::string command_line_text(int argc, const char* const* argv) {
    std::string out;
    for (int i = 0; i < argc; ++i) {
        const std::string a = argv[i];
        const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "0123456789_-./=:,+@%") == std::string::npos;
        if (i) out += ' ';
        if (plain) {
            out += a;
            continue;
        }
        out += '\'';
        for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        out += '\'';
    }
    return out;
}

// ---------------------------------------------------------------------------------------------- provenance

ModelProvenance model_provenance(const std::string& dir, const std::string& architecture,
                                 const std::vector<std::string>& files, ProgressSink* progress) {
    ProgressSink& sink = progress ? *progress : null_progress();
    ModelProvenance m;
    m.path = fs::absolute(dir).lexically_normal().string();
    m.architecture = architecture;
    for (std::size_t i = 0; i < files.size(); ++i) {
        SubProgress sub(sink, double(i) / double(files.size()), double(i + 1) / double(files.size()));
        FileDigest d;
        d.path = files[i];
        d.sha256 = sha256_file((fs::path(dir) / files[i]).string(), &sub, &d.bytes);
        m.files.push_back(std::move(d));
    }
    return m;
}

ModelProvenance model_provenance(const LlamaModel& model, ProgressSink* progress) {
    const fs::path dir = model.dir();
    std::vector<std::string> files{"config.json"};
    if (fs::exists(dir / "model.safetensors.index.json")) files.push_back("model.safetensors.index.json");
    for (const auto& f : model.checkpoint().files()) files.push_back(fs::path(f).lexically_relative(dir).string());
    for (const char* tok : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"})
        if (fs::exists(dir / tok)) files.push_back(tok);
    return model_provenance(dir.string(), model.config().architecture, files, progress);
}

DataProvenance data_provenance(const std::string& role, const std::string& path, int64_t tokens,
                               const std::string& protocol, ProgressSink* progress) {
    DataProvenance d;
    d.role = role;
    d.file.path = path;
    d.file.sha256 = sha256_file(path, progress, &d.file.bytes);
    d.tokens = tokens;
    d.protocol = protocol;
    return d;
}

void write_model_provenance(RunWriter& run, const ModelProvenance& m) {
    run.set_attrs({{"model_path", m.path}, {"model_architecture", m.architecture}});
    std::vector<std::string> paths, digests;
    std::vector<int64_t> bytes;
    for (const auto& f : m.files) {
        paths.push_back(f.path);
        bytes.push_back(static_cast<int64_t>(f.bytes));
        digests.push_back(f.sha256);
    }
    Table t;
    t.add("path", paths).add("bytes", bytes, "bytes").add("sha256", digests);
    run.write_table("model_files", t);
}

ModelProvenance read_model_provenance(const RunData& run) {
    ModelProvenance m;
    const auto text = [&](const char* key) {
        const auto* s = std::get_if<std::string>(&run.attr(key));
        if (!s) throw Error(run.where + ": attribute '" + key + "' is not text");
        return *s;
    };
    m.path = text("model_path");
    m.architecture = text("model_architecture");
    const Table& t = run.table("model_files");
    for (std::size_t i = 0; i < t.rows(); ++i)
        m.files.push_back({t.texts("path")[i], static_cast<uint64_t>(t.ints("bytes")[i]), t.texts("sha256")[i]});
    return m;
}

void write_data_provenance(RunWriter& run, const std::vector<DataProvenance>& data) {
    Table t;
    std::vector<std::string> roles, paths, digests, protocols;
    std::vector<int64_t> bytes, tokens;
    for (const auto& d : data) {
        roles.push_back(d.role);
        paths.push_back(d.file.path);
        bytes.push_back(static_cast<int64_t>(d.file.bytes));
        digests.push_back(d.file.sha256);
        tokens.push_back(d.tokens);
        protocols.push_back(d.protocol);
    }
    t.add("role", roles).add("path", paths).add("bytes", bytes, "bytes").add("sha256", digests);
    t.add("tokens", tokens, "tokens").add("protocol", protocols);
    run.write_table("data", t);
}

std::vector<DataProvenance> read_data_provenance(const RunData& run) {
    const Table& t = run.table("data");
    std::vector<DataProvenance> out;
    for (std::size_t i = 0; i < t.rows(); ++i) {
        DataProvenance d;
        d.role = t.texts("role")[i];
        d.file = {t.texts("path")[i], static_cast<uint64_t>(t.ints("bytes")[i]), t.texts("sha256")[i]};
        d.tokens = t.ints("tokens")[i];
        d.protocol = t.texts("protocol")[i];
        out.push_back(std::move(d));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------- quantize

void write_quantize_result(RunWriter& run, const QuantizeResult& r, bool with_tensors) {
    std::vector<int64_t> index;
    std::vector<std::string> names, codecs, transforms;
    std::vector<double> mse, rel, sqnr, out_rel, code_bits, total_bits, seconds;
    for (const auto& l : r.layers) {
        index.push_back(static_cast<int64_t>(l.layer));
        names.push_back(l.name);
        codecs.push_back(l.spec.to_string());
        transforms.push_back(l.transform);
        mse.push_back(l.metrics.weight_mse);
        rel.push_back(l.metrics.rel_fro_error);
        sqnr.push_back(l.metrics.sqnr_db);
        out_rel.push_back(l.metrics.output_rel_error);
        code_bits.push_back(l.metrics.code_bits_per_weight);
        total_bits.push_back(l.metrics.total_bits_per_weight);
        seconds.push_back(l.metrics.seconds);
    }
    Table t;
    t.add("layer", index).add("name", names).add("codec", codecs);
    t.add("weight_mse", mse).add("rel_fro_error", rel).add("sqnr_db", sqnr, "dB").add("output_rel_error", out_rel);
    t.add("code_bits_per_weight", code_bits, "bits").add("total_bits_per_weight", total_bits, "bits");
    t.add("seconds", seconds, "s").add("transform", transforms);
    t.attrs = {{"total_bits_per_weight", r.total_bits_per_weight()}, {"seconds", r.seconds}};
    run.write_table("layers", t);
    if (!with_tensors) return;
    for (const auto& l : r.layers) {
        const auto it = r.tensors.find(l.layer);
        if (it == r.tensors.end()) continue;
        run.write_tensor(l.name, to_stored(it->second));
        forget(it->second);  // spilled codes leave the resident set once written
    }
}

std::vector<LayerResult> read_layer_results(const RunData& run) {
    const Table& t = run.table("layers");
    std::vector<LayerResult> out;
    for (std::size_t i = 0; i < t.rows(); ++i) {
        LayerResult l;
        l.layer = static_cast<std::size_t>(t.ints("layer")[i]);
        l.name = t.texts("name")[i];
        try {
            l.spec = CodecSpec::parse(t.texts("codec")[i]);
        } catch (const Error& e) {
            throw Error(t.where + ": column 'codec', row " + std::to_string(i) + ": " + e.what());
        }
        l.metrics.weight_mse = t.reals("weight_mse")[i];
        l.metrics.rel_fro_error = t.reals("rel_fro_error")[i];
        l.metrics.sqnr_db = t.reals("sqnr_db")[i];
        l.metrics.output_rel_error = t.reals("output_rel_error")[i];
        l.metrics.code_bits_per_weight = t.reals("code_bits_per_weight")[i];
        l.metrics.total_bits_per_weight = t.reals("total_bits_per_weight")[i];
        l.metrics.seconds = t.reals("seconds")[i];
        if (t.has("transform")) l.transform = t.texts("transform")[i];  // recorded since the widths vary
        out.push_back(std::move(l));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------- reports

void write_kl_report(RunWriter& run, const KlReport& r, const std::string& name) {
    Table t;
    const auto one = [](double v) { return std::vector<double>{v}; };
    t.add("kl_mean", one(r.kl_mean), "nats").add("kl_stderr", one(r.kl_stderr), "nats");
    t.add("kl_median", one(r.kl_median), "nats").add("kl_p90", one(r.kl_p90), "nats");
    t.add("kl_p99", one(r.kl_p99), "nats").add("kl_p999", one(r.kl_p999), "nats").add("kl_max", one(r.kl_max), "nats");
    t.add("top1_agreement", one(r.top1_agreement)).add("rms_delta_p", one(r.rms_delta_p));
    t.add("ppl_ref", one(r.ppl_ref)).add("ppl_test", one(r.ppl_test)).add("ppl_ratio", one(r.ppl_ratio));
    t.add("first_scored_token", std::vector<int64_t>{r.first_scored_token}).add("seconds", one(r.seconds), "s");
    add_protocol(t, r.protocol);
    if (!r.per_token_kl.empty()) t.attrs["per_token"] = name + "_per_token";
    run.write_table(name, t);
    if (!r.per_token_kl.empty())
        run.write_array(name + "_per_token", r.per_token_kl, {},
                        {{"units", std::string("nats")}, {"first_scored_token", r.first_scored_token}});
}

KlReport read_kl_report(const RunData& run, const std::string& name) {
    const Table& t = run.table(name);
    KlReport r;
    r.kl_mean = real_at0(t, "kl_mean");
    r.kl_stderr = real_at0(t, "kl_stderr");
    r.kl_median = real_at0(t, "kl_median");
    r.kl_p90 = real_at0(t, "kl_p90");
    r.kl_p99 = real_at0(t, "kl_p99");
    r.kl_p999 = real_at0(t, "kl_p999");
    r.kl_max = real_at0(t, "kl_max");
    r.top1_agreement = real_at0(t, "top1_agreement");
    r.rms_delta_p = real_at0(t, "rms_delta_p");
    r.ppl_ref = real_at0(t, "ppl_ref");
    r.ppl_test = real_at0(t, "ppl_test");
    r.ppl_ratio = real_at0(t, "ppl_ratio");
    r.first_scored_token = int_at0(t, "first_scored_token");
    r.seconds = real_at0(t, "seconds");
    r.protocol = read_protocol(t);
    if (t.attrs.count("per_token")) {
        const Array& a = run.array(name + "_per_token");
        if (a.shape.size() != 1) throw Error(run.where + ": array '" + name + "_per_token' is not 1-D");
        r.per_token_kl.assign(a.values.begin(), a.values.end());
    }
    return r;
}

void write_perplexity(RunWriter& run, const PerplexityResult& r, const std::string& name) {
    Table t;
    t.add("perplexity", std::vector<double>{r.perplexity}).add("nll_mean", std::vector<double>{r.nll_mean}, "nats");
    t.add("seconds", std::vector<double>{r.seconds}, "s");
    t.add("tokens_per_second", std::vector<double>{r.tokens_per_second}, "tokens/s");
    add_protocol(t, r.protocol);
    run.write_table(name, t);
}

PerplexityResult read_perplexity(const RunData& run, const std::string& name) {
    const Table& t = run.table(name);
    PerplexityResult r;
    r.perplexity = real_at0(t, "perplexity");
    r.nll_mean = real_at0(t, "nll_mean");
    r.seconds = real_at0(t, "seconds");
    r.tokens_per_second = real_at0(t, "tokens_per_second");
    r.protocol = read_protocol(t);
    return r;
}

// ---------------------------------------------------------------------------------------------- tensors

StoredTensor to_stored(const QuantizedTensor& q) {
    StoredTensor t;
    t.codec = q.spec.to_string();
    t.rows = q.rows;
    t.cols = q.cols;
    for (const auto& p : q.parts) {
        const std::string where = "quantized tensor (" + t.codec + "): part '" + p.name + "'";
        const auto it = dtype_names().find(p.data.scalar_type());
        if (it == dtype_names().end())
            throw Error(where + ": dtype " + std::string(c10::toString(p.data.scalar_type())) + " cannot be stored");
        const at::Tensor data = p.data.to(torch::kCPU).contiguous();
        StoredPart s;
        s.name = p.name;
        s.role = part_role_name(p.role);
        s.dtype = it->second;
        s.shape.assign(data.sizes().begin(), data.sizes().end());
        const auto* bytes = static_cast<const uint8_t*>(data.data_ptr());
        s.bytes.assign(bytes, bytes + data.nbytes());  // the host is little-endian, as StoredPart wants
        s.bits = p.bits;
        s.shared = p.shared;
        t.parts.push_back(std::move(s));
    }
    return t;
}

QuantizedTensor from_stored(const StoredTensor& t) {
    QuantizedTensor q;
    q.spec = CodecSpec::parse(t.codec);
    q.rows = t.rows;
    q.cols = t.cols;
    for (const auto& s : t.parts) {
        const std::string where = "quantized tensor (" + t.codec + "): part '" + s.name + "'";
        c10::ScalarType type = c10::ScalarType::Undefined;
        for (const auto& [st, name] : dtype_names())
            if (name == s.dtype) type = st;
        if (type == c10::ScalarType::Undefined) throw Error(where + ": unknown dtype '" + s.dtype + "'");
        PartRole role = PartRole::Other;
        bool known = false;
        for (PartRole r : {PartRole::Codes, PartRole::Scale, PartRole::Norm, PartRole::Codebook, PartRole::Transform,
                           PartRole::Other})
            if (s.role == part_role_name(r)) role = r, known = true;
        if (!known) throw Error(where + ": unknown role '" + s.role + "'");
        at::Tensor data = torch::empty(s.shape, torch::TensorOptions().dtype(type));
        if (static_cast<std::size_t>(data.nbytes()) != s.bytes.size())
            throw Error(where + ": " + std::to_string(s.bytes.size()) + " bytes do not fill its shape");
        if (!s.bytes.empty()) std::memcpy(data.data_ptr(), s.bytes.data(), s.bytes.size());
        q.parts.push_back({s.name, role, data, s.bits, s.shared});
    }
    return q;
}

}  // namespace quench
