#include "io/packed_loader.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/json_file.h"
#include "common/progress.h"
#include "io/packed_checkpoint.h"
#include "model/checkpoint.h"
#include "model/llama_model.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "quant/codec.h"
#include "quant/dequantized_layers.h"
#include "quant/spilled_parts.h"

namespace quench {

using nlohmann::json;

namespace {

json read_json(const std::string& path) { return read_json_file(path); }

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

// A field of a JSON object, or a quench::Error naming where it was expected.
const json& field(const json& obj, const std::string& key, const std::string& where) {
    const auto it = obj.find(key);
    if (it == obj.end()) throw Error(where + ": field '" + key + "' is missing");
    return *it;
}

std::string string_field(const json& obj, const std::string& key, const std::string& where) {
    const json& v = field(obj, key, where);
    if (!v.is_string()) throw Error(where + ": field '" + key + "' must be a string");
    return v.get<std::string>();
}

int64_t int_field(const json& obj, const std::string& key, int64_t min, const std::string& where) {
    const json& v = field(obj, key, where);
    if (!v.is_number_integer() || v.get<int64_t>() < min)
        throw Error(where + ": field '" + key + "' must be an integer >= " + std::to_string(min) + ", got " + v.dump());
    return v.get<int64_t>();
}

PartRole role_from_name(const std::string& name, const std::string& where) {
    for (int r = static_cast<int>(PartRole::Codes); r <= static_cast<int>(PartRole::Other); ++r)
        if (name == part_role_name(static_cast<PartRole>(r))) return static_cast<PartRole>(r);
    throw Error(where + ": unknown role '" + name + "'");
}

// quantization_config.modules (module name -> spec), after checking method, format and version.
std::map<std::string, std::string> read_quant_config(const std::string& dir) {
    const std::string path = dir + "/config.json";
    const json config = read_json(path);
    const auto qc = config.is_object() ? config.find("quantization_config") : config.end();
    if (qc == config.end() || qc->is_null())
        throw Error(path + ": quantization_config is missing (not a packed Quench checkpoint)");
    const std::string where = path + ": quantization_config";
    if (!qc->is_object()) throw Error(where + " is not an object");
    const std::string method = string_field(*qc, "quant_method", where);
    if (method != kPackedQuantMethod)
        throw Error(where + ": quant_method is '" + method + "', expected '" + kPackedQuantMethod + "'");
    if (string_field(*qc, "format", where) != kPackedFormat)
        throw Error(where + ": format is '" + qc->at("format").get<std::string>() + "', expected '" + kPackedFormat +
                    "'");
    const int64_t version = int_field(*qc, "format_version", 1, where);
    if (version != kPackedFormatVersion)
        throw Error(where + ": format_version " + std::to_string(version) + " is not one this Quench reads (" +
                    std::to_string(kPackedFormatVersion) + ")");
    const json& modules = field(*qc, "modules", where);
    if (!modules.is_object()) throw Error(where + ": field 'modules' must be an object");
    std::map<std::string, std::string> out;
    for (const auto& [module, spec] : modules.items()) {
        if (!spec.is_string()) throw Error(where + ": modules['" + module + "'] must be a spec string");
        out[module] = spec.get<std::string>();
    }
    return out;
}

// A part's data: a view of the mapping when its alignment allows (the deleter keeps the file mapped),
// else a copy, since torch kernels assume naturally aligned data.
at::Tensor part_tensor(const std::shared_ptr<SafetensorsFile>& file, const TensorInfo& t, at::ScalarType type) {
    auto* src = const_cast<uint8_t*>(file->data(t));  // MAP_PRIVATE: writes can never reach the file
    if (reinterpret_cast<uintptr_t>(src) % dtype_size(t.dtype) == 0)
        return at::from_blob(
            src, t.shape, [keep = file](void*) {}, at::TensorOptions().dtype(type));
    at::Tensor copy = at::empty(t.shape, at::TensorOptions().dtype(type));
    std::memcpy(copy.data_ptr(), src, t.nbytes());
    return copy;
}

QuantizedTensor parse_descriptor(const std::shared_ptr<SafetensorsFile>& file, const std::string& name,
                                 const std::string& text) {
    const std::string where = file->path() + ": tensor '" + name + "'";
    json d;
    try {
        d = json::parse(text);
    } catch (const json::exception& e) {
        throw Error(where + ": descriptor is not valid JSON: " + e.what());
    }
    if (!d.is_object()) throw Error(where + ": descriptor is not a JSON object");
    QuantizedTensor q;
    const std::string spec_text = string_field(d, "spec", where);
    std::unique_ptr<Codec> codec;
    try {
        q.spec = CodecSpec::parse(spec_text);
        codec = make_codec(q.spec);
    } catch (const Error& e) {
        throw Error(where + ": spec '" + spec_text + "': " + e.what());
    }
    q.rows = int_field(d, "rows", 1, where);
    q.cols = int_field(d, "cols", 1, where);
    const json& parts = field(d, "parts", where);
    if (!parts.is_array() || parts.empty()) throw Error(where + ": field 'parts' must be a non-empty array");

    int64_t bits = 0;
    std::set<std::string> seen;
    for (const json& pj : parts) {
        if (!pj.is_object()) throw Error(where + ": every entry of 'parts' must be an object");
        QuantPart p;
        p.name = string_field(pj, "name", where + ": part");
        const std::string pw = where + ": part '" + p.name + "'";
        if (!seen.insert(p.name).second) throw Error(pw + ": appears twice");
        p.role = role_from_name(string_field(pj, "role", pw), pw);
        p.bits = int_field(pj, "bits", 0, pw);
        const json& shared = field(pj, "shared", pw);
        if (!shared.is_boolean()) throw Error(pw + ": field 'shared' must be true or false");
        p.shared = shared.get<bool>();
        const std::string dtype_text = string_field(pj, "dtype", pw);
        const auto dtype = dtype_from_name(dtype_text);
        if (!dtype || *dtype == DType::BOOL) throw Error(pw + ": unknown or unsupported dtype '" + dtype_text + "'");
        const json& shape_json = field(pj, "shape", pw);
        std::vector<int64_t> shape;
        if (shape_json.is_array())
            for (const json& dim : shape_json) shape.push_back(dim.is_number_integer() ? dim.get<int64_t>() : -1);
        if (!shape_json.is_array() ||
            std::find_if(shape.begin(), shape.end(), [](int64_t v) { return v < 0; }) != shape.end())
            throw Error(pw + ": field 'shape' must be an array of non-negative integers");
        const std::string tensor = string_field(pj, "tensor", pw);
        const TensorInfo* info = file->find(tensor);
        if (!info) throw Error(pw + ": refers to tensor '" + tensor + "', which is not in the file");
        if (info->dtype != *dtype || info->shape != shape)
            throw Error(pw + ": descriptor says " + dtype_text + " " + shape_text(shape) + ", the file stores '" +
                        tensor + "' as " + dtype_name(info->dtype) + " " + shape_text(info->shape));
        if (info->nbytes() != static_cast<uint64_t>((p.bits + 7) / 8))
            throw Error(pw + ": stores " + std::to_string(info->nbytes()) + " bytes, its " + std::to_string(p.bits) +
                        " bits need " + std::to_string((p.bits + 7) / 8));
        p.data = part_tensor(file, *info, packed_scalar_type(*dtype));
        bits += p.bits;
        q.parts.push_back(std::move(p));
    }
    // The codec's own bit count for rows x cols must match the parts: catches rows/cols that lie about the
    // data before any decoding reads past it.
    BitsEstimate expected;
    try {
        expected = codec->estimate_bits(q.rows, q.cols);
    } catch (const Error& e) {
        throw Error(where + ": rows " + std::to_string(q.rows) + ", cols " + std::to_string(q.cols) + ": " + e.what());
    }
    const int64_t want = std::llround(expected.total_bits_per_weight * static_cast<double>(q.numel()));
    if (want != bits)
        throw Error(where + ": rows " + std::to_string(q.rows) + ", cols " + std::to_string(q.cols) + " need " +
                    std::to_string(want) + " bits under " + q.spec.to_string() + ", the parts hold " +
                    std::to_string(bits));
    return q;
}

}  // namespace

std::map<std::string, QuantizedTensor> read_packed_tensors(const std::string& dir) {
    const std::map<std::string, std::string> modules = read_quant_config(dir);
    auto file = std::make_shared<SafetensorsFile>(dir + "/model.safetensors");
    const std::string& path = file->path();
    const auto& meta = file->metadata();
    const auto format = meta.find("quench.format"), version = meta.find("quench.format_version");
    if (format == meta.end() || format->second != kPackedFormat)
        throw Error(path + ": __metadata__ 'quench.format' is missing or not '" + kPackedFormat + "'");
    if (version == meta.end() || version->second != std::to_string(kPackedFormatVersion))
        throw Error(path + ": __metadata__ 'quench.format_version' is " +
                    (version == meta.end() ? std::string("missing") : "'" + version->second + "'") + ", expected '" +
                    std::to_string(kPackedFormatVersion) + "'");

    const std::string prefix = kPackedDescriptorPrefix;
    std::map<std::string, QuantizedTensor> out;
    for (const auto& [key, value] : meta) {
        if (key.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string name = key.substr(prefix.size());
        const std::string suffix = ".weight";
        if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
            throw Error(path + ": descriptor '" + key + "' does not name a .weight tensor");
        QuantizedTensor q = parse_descriptor(file, name, value);
        const std::string module = name.substr(0, name.size() - suffix.size());
        const auto listed = modules.find(module);
        if (listed == modules.end())
            throw Error(dir + "/config.json: quantization_config.modules has no entry for '" + module +
                        "', which model.safetensors stores quantized");
        if (listed->second != q.spec.to_string())
            throw Error(dir + "/config.json: quantization_config.modules['" + module + "'] is '" + listed->second +
                        "', model.safetensors says '" + q.spec.to_string() + "'");
        out.emplace(name, std::move(q));
    }
    for (const auto& [module, spec] : modules)
        if (!out.count(module + ".weight"))
            throw Error(dir + "/config.json: quantization_config.modules lists '" + module +
                        "', but model.safetensors has no descriptor for it");
    return out;
}

std::unique_ptr<LlamaModel> load_packed_model(const std::string& dir, ProgressSink* progress) {
    ProgressSink& prog = progress ? *progress : null_progress();
    prog.report(0.0, "reading config");
    ModelConfig config = ModelConfig::from_file(dir + "/config.json");
    std::map<std::string, QuantizedTensor> tensors = read_packed_tensors(dir);
    const std::string path = dir + "/model.safetensors";
    std::map<std::string, std::shared_ptr<const Codec>> codecs;  // by spec: codecs may build tables once
    GivenWeights given;
    const double total = static_cast<double>(std::max<std::size_t>(1, tensors.size()));
    // Each layer stays as its codes and is dequantized when a pass uses it; every one is dequantized once
    // here, one at a time, so a damaged tensor is reported when the model is opened, not mid-evaluation.
    for (auto& [name, q] : tensors) {
        prog.check();
        const std::string spec = q.spec.to_string(), where = path + ": tensor '" + name + "' (" + spec + ")";
        auto& codec = codecs[spec];
        if (!codec) codec = make_codec(q.spec);
        try {
            const at::Tensor w = codec->dequantize(q);
            if (w.dim() != 2 || w.size(0) != q.rows || w.size(1) != q.cols)
                throw Error("dequantized to " + shape_text(w.sizes().vec()) + ", not [" + std::to_string(q.rows) +
                            ", " + std::to_string(q.cols) + "]");
        } catch (const Cancelled&) {
            throw;
        } catch (const std::exception& e) {  // quench::Error, or a torch error from malformed part data
            throw Error(where + ": cannot dequantize: " + std::string(e.what()).substr(0, 400));
        }
        forget(q);  // parts are views of the mapping: its pages leave the resident set until used
        given.deferred.emplace(name, quantized_weight(q, codec));
        prog.report(0.9 * static_cast<double>(given.deferred.size()) / total, "checking " + name);
    }
    prog.check();
    Checkpoint ckpt = Checkpoint::open(dir, config.tie_word_embeddings);
    auto model = std::make_unique<LlamaModel>(std::move(config), std::move(ckpt), std::move(given));
    prog.report(1.0, "loaded");
    return model;
}

}  // namespace quench
