#include "io/export_plan.h"

#include <set>

#include "common/error.h"
#include "model/llama_model.h"

namespace quench {

ExportFormat export_format_from_name(const std::string& name) {
    for (ExportFormat f : {ExportFormat::Packed, ExportFormat::Hf, ExportFormat::Gguf})
        if (name == export_format_name(f)) return f;
    throw Error("export format '" + name + "': expected packed, hf or gguf");
}

GgufExportOptions gguf_export_options(const LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors,
                                      const std::string& type, const std::vector<std::string>& overrides) {
    GgufExportOptions opt;
    if (!type.empty()) {
        opt.default_type = parse_gguf_type(type, "GGUF export type");
    } else {
        for (const auto& [index, q] : tensors)
            opt.tensor_types[gguf_tensor_name(model.layers().at(index).weight_name())] =
                gguf_type_for_codec(q.spec.to_string(), q.rows, q.cols);
    }
    for (const auto& o : overrides) {
        const auto eq = o.find('=');
        if (eq == std::string::npos) throw Error("GGUF tensor type '" + o + "': expected NAME=TYPE");
        opt.tensor_types[o.substr(0, eq)] = parse_gguf_type(o.substr(eq + 1), "GGUF tensor type '" + o + "'");
    }
    return opt;
}

double estimate_export_bytes(const LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors,
                             ExportFormat format, const GgufExportOptions& gguf) {
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
            const auto t = tensors.find(layer->second);
            if (t != tensors.end()) q = &t->second;
            replaced = model.is_replaced(layer->second);
        }
        if (!q && !replaced && !stored.insert(model.checkpoint().stored_bytes(name)).second) continue;
        switch (format) {
        case ExportFormat::Packed:
            bytes += q ? n * q->total_bits_per_weight() / 8.0 : double(info.nbytes());
            break;
        case ExportFormat::Hf:
            bytes += n * 2.0;
            break;
        case ExportFormat::Gguf: {
            if (info.shape.size() != 2) {
                bytes += n * 4.0;  // norms stay F32
                break;
            }
            const auto it = gguf.tensor_types.find(gguf_tensor_name(name));
            const GgmlType type = gguf_fitting_type(it != gguf.tensor_types.end() ? it->second : gguf.default_type,
                                                    info.shape[1]);
            bytes += n * ggml_type_info(type).bits_per_weight() / 8.0;
            break;
        }
        }
    }
    return bytes;
}

}  // namespace quench
