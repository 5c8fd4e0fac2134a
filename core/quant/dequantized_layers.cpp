#include "quant/dequantized_layers.h"

#include <string>

#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/spilled_parts.h"

namespace quench {
namespace {

// A quantized layer as the model holds it. The parts share their storage with the caller's QuantizedTensor
// (tensors are reference counted), so holding one costs nothing beyond the codes themselves.
class QuantizedWeight final : public DeferredWeight {
public:
    QuantizedWeight(QuantizedTensor q, std::shared_ptr<const Codec> codec)
        : q_(std::move(q)), codec_(std::move(codec)) {}
    at::Tensor dense() const override {
        at::Tensor w = codec_->dequantize(q_);
        forget(q_);  // spilled codes leave the resident set again until the next pass
        return w;
    }
    int64_t rows() const override { return q_.rows; }
    int64_t cols() const override { return q_.cols; }

private:
    QuantizedTensor q_;
    std::shared_ptr<const Codec> codec_;
};

}  // namespace

std::shared_ptr<const DeferredWeight> quantized_weight(const QuantizedTensor& q, std::shared_ptr<const Codec> codec) {
    return std::make_shared<QuantizedWeight>(q, std::move(codec));
}

void replace_with_quantized(LlamaModel& model, std::size_t layer, const QuantizedTensor& q,
                            std::shared_ptr<const Codec> codec) {
    model.replace_weight(layer, quantized_weight(q, std::move(codec)));
}

void replace_with_quantized(LlamaModel& model, std::size_t layer, const QuantizedTensor& q) {
    replace_with_quantized(model, layer, q, make_codec(q.spec));
}

void replace_with_quantized(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors) {
    std::map<std::string, std::shared_ptr<const Codec>> codecs;  // by spec: a codec may build its tables once
    for (const auto& [layer, q] : tensors) {
        auto& codec = codecs[q.spec.to_string()];
        if (!codec) codec = make_codec(q.spec);
        replace_with_quantized(model, layer, q, codec);
    }
}

}  // namespace quench
