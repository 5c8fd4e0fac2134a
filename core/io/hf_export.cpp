#include "io/hf_export.h"

#include <torch/torch.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "model/llama_model.h"

namespace quench {

using nlohmann::json;

namespace {

constexpr const char* kEmbed = "model.embed_tokens.weight";
constexpr const char* kLmHead = "lm_head.weight";

// Registry index of a weight name, if it is a linear layer's weight (not its bias).
std::optional<std::size_t> layer_of(const LayerRegistry& reg, const std::string& name) {
    const auto i = reg.index_of(name);
    return i && reg.at(*i).weight_name() == name ? i : std::nullopt;
}

// lm_head can stay an alias of the embedding only if it is still the very tensor the embedding is.
bool lm_head_is_embedding(const LlamaModel& model) {
    if (!model.config().tie_word_embeddings) return false;
    const auto head = layer_of(model.layers(), kLmHead);
    if (!head || model.is_replaced(*head)) return false;
    const auto& decoded = model.decoded_weights();
    if (std::find(decoded.begin(), decoded.end(), kLmHead) != decoded.end()) return false;
    const Checkpoint& ck = model.checkpoint();
    return ck.contains(kEmbed) && ck.contains(kLmHead) && ck.info(kEmbed).name == ck.info(kLmHead).name;
}

}  // namespace

HfExportReport export_hf_dequantized(const LlamaModel& model, const std::string& out_dir, DType dtype,
                                     ProgressSink* progress, const ExportOptions& options) {
    ProgressSink& prog = progress ? *progress : null_progress();
    if (dtype != DType::F16 && dtype != DType::BF16)
        throw Error(out_dir + ": HF export writes F16 or BF16, not " + std::string(dtype_name(dtype)));
    const at::ScalarType type = dtype == DType::F16 ? at::kHalf : at::kBFloat16;
    const LayerRegistry& reg = model.layers();
    const Checkpoint& ckpt = model.checkpoint();

    HfExportReport report;
    report.tied = lm_head_is_embedding(model);
    SafetensorsStream st;
    for (const std::string& name : model.tensor_names()) {
        if (report.tied && name == kLmHead) continue;
        const auto layer = layer_of(reg, name);
        const std::vector<int64_t> shape =
            layer ? std::vector<int64_t>{reg.at(*layer).out_features, reg.at(*layer).in_features}
                  : ckpt.info(name).shape;
        st.add(name, dtype, shape,
               [&model, &ckpt, layer, name, type, dtype, out_dir](const SafetensorsStream::ByteSink& sink) {
                   // One tensor at a time, converted in slices of rows (a 128256 x 4096 embedding is 1 GB as
                   // BF16: converting it whole would cost three times that), each released before the next.
                   const at::Tensor w = layer ? model.weight(*layer) : ckpt.tensor(name);
                   const int64_t rows = w.dim() > 1 ? w.size(0) : 1;
                   const int64_t per_row = std::max<int64_t>(1, w.numel() / std::max<int64_t>(1, rows));
                   const int64_t step = std::max<int64_t>(1, (int64_t(16) << 20) / per_row);
                   for (int64_t r = 0; r < rows; r += step) {
                       const at::Tensor src = w.dim() > 1 ? w.narrow(0, r, std::min(step, rows - r)) : w;
                       const at::Tensor h = src.to(type).contiguous();
                       if (!torch::isfinite(h).all().item<bool>() && torch::isfinite(src).all().item<bool>())
                           throw Error(out_dir + ": tensor '" + name + "' has values beyond the " + dtype_name(dtype) +
                                       " range (max |w| = " + std::to_string(src.abs().max().item<double>()) + ")");
                       sink(h.data_ptr(), h.nbytes());
                   }
                   // The source's pages leave the resident set once converted: the export of a 7B model
                   // holds one tensor, not the whole mapping it has read through.
                   if (model.streaming() && ckpt.contains(name)) ckpt.forget(name);
               });
        ++report.tensors;
    }
    st.set_metadata("format", "pt");

    json config;
    try {
        config = json::parse(source_config_text(model));
    } catch (const json::exception& e) {
        throw Error(model.dir() + "/config.json: not valid JSON: " + e.what());
    }
    config.erase("quantization_config");  // the weights are plain now, whatever the source was
    config["torch_dtype"] = dtype == DType::F16 ? "float16" : "bfloat16";
    config["tie_word_embeddings"] = report.tied;

    report.file_bytes =
        write_model_directory(out_dir, options, model.dir(), config.dump(2) + "\n", st, prog, 0.02);
    report.dir = out_dir;
    return report;
}

}  // namespace quench
