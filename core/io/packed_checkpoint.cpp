#include "io/packed_checkpoint.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"
#include "quant/spilled_parts.h"

namespace quench {

using nlohmann::json;

namespace {

// Names a shared part by its content (FNV-1a 64), so equal tables share one name across layers and runs.
std::string shared_tensor_name(const std::string& spec, const QuantPart& part, const at::Tensor& data) {
    uint64_t h = kFnv1aOffset;
    h = fnv1a(h, spec.data(), spec.size() + 1);  // the terminating NUL separates the fields
    h = fnv1a(h, part.name.data(), part.name.size() + 1);
    h = fnv1a(h, data.data_ptr(), data.nbytes());
    return std::string(kPackedSharedPrefix) + hex64(h) + "." + part.name;
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
    return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
           std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

}  // namespace

DType packed_part_dtype(const at::Tensor& t, const std::string& where) {
    switch (t.scalar_type()) {
        case at::kByte: return DType::U8;
        case at::kChar: return DType::I8;
        case at::kShort: return DType::I16;
        case at::kInt: return DType::I32;
        case at::kLong: return DType::I64;
        case at::kHalf: return DType::F16;
        case at::kBFloat16: return DType::BF16;
        case at::kFloat: return DType::F32;
        case at::kDouble: return DType::F64;
        default:
            throw Error(where + ": part dtype " + std::string(c10::toString(t.scalar_type())) + " cannot be stored");
    }
}

at::ScalarType packed_scalar_type(DType d) {
    switch (d) {
        case DType::U8: return at::kByte;
        case DType::I8: return at::kChar;
        case DType::I16: return at::kShort;
        case DType::I32: return at::kInt;
        case DType::I64: return at::kLong;
        case DType::F16: return at::kHalf;
        case DType::BF16: return at::kBFloat16;
        case DType::F32: return at::kFloat;
        case DType::F64: return at::kDouble;
        case DType::BOOL: break;
    }
    throw Error(std::string("dtype ") + dtype_name(d) + " is not a packed part dtype");
}

PackedWriteReport write_packed_checkpoint(const LlamaModel& model,
                                          const std::map<std::size_t, QuantizedTensor>& tensors,
                                          const std::string& out_dir, ProgressSink* progress,
                                          const ExportOptions& options) {
    ProgressSink& prog = progress ? *progress : null_progress();
    const Checkpoint& ckpt = model.checkpoint();
    const LayerRegistry& reg = model.layers();
    if (!model.decoded_weights().empty())
        throw Error(out_dir + ": the model was loaded from a packed checkpoint (" + model.dir() +
                    "); quantize the original model to write a new one");

    PackedWriteReport report;
    SafetensorsStream st;
    std::vector<at::Tensor> keep;              // contiguous copies of parts that were not, alive until written
    std::map<std::string, at::Tensor> shared;  // shared tensor name -> data, each stored once
    std::set<std::string> quantized;           // weight names
    json modules = json::object();

    for (const auto& [index, q] : tensors) {
        prog.check();
        if (index >= reg.size())
            throw Error(out_dir + ": quantized tensor for layer index " + std::to_string(index) + " out of range");
        const LayerInfo& info = reg.at(index);
        const std::string name = info.weight_name(), spec = q.spec.to_string();
        const std::string where = out_dir + ": tensor '" + name + "' (" + spec + ")";
        if (q.rows != info.out_features || q.cols != info.in_features)
            throw Error(where + ": quantized as " + std::to_string(q.rows) + "x" + std::to_string(q.cols) +
                        ", the layer is " + std::to_string(info.out_features) + "x" + std::to_string(info.in_features));
        make_codec(q.spec);  // a spec the loader could not rebuild must not be written
        check_exportable(q.spec, ExportFormat::Packed, where);
        json parts = json::array();
        std::set<std::string> part_names;
        for (const QuantPart& p : q.parts) {
            if (!p.data.defined() || !part_names.insert(p.name).second)
                throw Error(where + ": part '" + p.name + "' is undefined or appears twice");
            at::Tensor data = p.data.device().is_cpu() && p.data.is_contiguous() ? p.data : p.data.cpu().contiguous();
            const DType dtype = packed_part_dtype(data, where + ": part '" + p.name + "'");
            if (static_cast<uint64_t>(data.nbytes()) != static_cast<uint64_t>((p.bits + 7) / 8))
                throw Error(where + ": part '" + p.name + "' holds " + std::to_string(data.nbytes()) + " bytes for " +
                            std::to_string(p.bits) + " bits (the format stores whole bytes, no padding)");
            std::string tensor_name = name + "." + p.name;
            if (p.shared) {
                tensor_name = shared_tensor_name(spec, p, data);
                const auto [it, fresh] = shared.emplace(tensor_name, data);
                if (!fresh && !same_bytes(it->second, data))
                    throw Error(where + ": shared part '" + p.name + "' hashes like a different table (" + tensor_name +
                                ")");
                if (fresh) {  // model totals count a shared table once, as QuantizeResult does
                    st.add_bytes(tensor_name, dtype, data.sizes().vec(), data.data_ptr(), data.nbytes());
                    report.quantized_bits += p.bits;
                    report.part_bytes += data.nbytes();
                    ++report.shared_parts;
                }
            } else {
                st.add(tensor_name, dtype, data.sizes().vec(),
                       [data, &tensor = q](const SafetensorsStream::ByteSink& sink) {
                           sink(data.data_ptr(), data.nbytes());
                           forget(tensor);  // spilled codes (quant/spilled_parts.h) leave the resident set once written
                       });
                report.quantized_bits += p.bits;
                report.part_bytes += data.nbytes();
            }
            if (!data.is_same(p.data)) keep.push_back(data);
            parts.push_back({{"name", p.name},
                             {"role", part_role_name(p.role)},
                             {"dtype", dtype_name(dtype)},
                             {"shape", data.sizes().vec()},
                             {"bits", p.bits},
                             {"shared", p.shared},
                             {"tensor", tensor_name}});
        }
        const json desc = {{"spec", spec}, {"rows", q.rows}, {"cols", q.cols}, {"parts", parts}};
        st.set_metadata(kPackedDescriptorPrefix + name, desc.dump());
        modules[info.name] = spec;
        quantized.insert(name);
        report.quantized_params += q.numel();
        ++report.quantized_tensors;
    }
    for (std::size_t i = 0; i < reg.size(); ++i)
        if (model.is_replaced(i) && !quantized.count(reg.at(i).weight_name()))
            throw Error(out_dir + ": layer '" + reg.at(i).name +
                        "' is replaced in the model but has no quantized tensor to write");

    // Everything else as stored, straight from the source mapping. An alias whose target is written too
    // stays an alias; one whose target was quantized (a tied embedding whose lm_head was) becomes a copy.
    for (const std::string& name : ckpt.names()) {
        if (quantized.count(name)) continue;
        const TensorInfo& info = ckpt.info(name);
        if (info.name != name && !quantized.count(info.name)) {
            st.set_metadata(name, info.name);
            ++report.aliases;
            continue;
        }
        st.add(name, info.dtype, info.shape, [&ckpt, name, stream = model.streaming()](const SafetensorsStream::ByteSink& sink) {
            sink(ckpt.stored_bytes(name), ckpt.info(name).nbytes());
            if (stream) ckpt.forget(name);  // copied straight from the mapping, whose pages then leave memory
        });
        report.unquantized_bytes += info.nbytes();
        ++report.copied_tensors;
    }
    st.set_metadata("format", "pt");
    st.set_metadata("quench.format", kPackedFormat);
    st.set_metadata("quench.format_version", std::to_string(kPackedFormatVersion));

    json config;
    try {
        config = json::parse(source_config_text(model));
    } catch (const json::exception& e) {
        throw Error(model.dir() + "/config.json: not valid JSON: " + e.what());
    }
    // A quantized lm_head no longer equals the embedding, so the two are stored apart and untied.
    if (quantized.count("lm_head.weight")) config["tie_word_embeddings"] = false;
    config["quantization_config"] = {{"quant_method", kPackedQuantMethod},
                                     {"format", kPackedFormat},
                                     {"format_version", kPackedFormatVersion},
                                     {"bits_per_weight", report.total_bits_per_weight()},
                                     {"modules", modules},
                                     {"quench_version", QUENCH_VERSION}};

    report.file_bytes =
        write_model_directory(out_dir, options, model.dir(), config.dump(2) + "\n", st, prog, 0.05);
    report.header_bytes = report.file_bytes - report.part_bytes - report.unquantized_bytes;
    report.dir = out_dir;
    return report;
}

}  // namespace quench
