#include "quant/dequantized_layers.h"

#include <memory>
#include <string>

#include "model/llama_model.h"
#include "quant/codec.h"

namespace quench {

void replace_with_dequantized(LlamaModel& model, std::size_t layer, const QuantizedTensor& q) {
    model.replace_weight(layer, make_codec(q.spec)->dequantize(q));
}

void replace_with_dequantized(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors) {
    std::map<std::string, std::unique_ptr<Codec>> codecs;  // by spec: a codec may build its tables once
    for (const auto& [layer, q] : tensors) {
        auto& codec = codecs[q.spec.to_string()];
        if (!codec) codec = make_codec(q.spec);
        model.replace_weight(layer, codec->dequantize(q));
    }
}

}  // namespace quench
