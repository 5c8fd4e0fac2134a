#pragma once
// Puts quantized layers into a model: each layer is held as its stored parts (codes, scales, ...) and a pass
// computes with the codec's dequantization of them, made when the pass reaches the layer and dropped after
// (LlamaModel's DeferredWeight), so a quantized model costs its codes, not a second dense copy. The one way
// every job (quantize, QAT, export from a run, the workbench after a job restored the model) makes a model
// compute with quantized layers; codecs are built once per setting.
#include <cstddef>
#include <map>
#include <memory>

#include "quant/quantized_tensor.h"

namespace quench {

class Codec;
class DeferredWeight;
class LlamaModel;

// A layer weight that holds q's parts (sharing their storage) and dequantizes them with the codec on use.
std::shared_ptr<const DeferredWeight> quantized_weight(const QuantizedTensor& q, std::shared_ptr<const Codec> codec);

void replace_with_quantized(LlamaModel& model, std::size_t layer, const QuantizedTensor& q);
// As above with the codec already built (the quantizer has it).
void replace_with_quantized(LlamaModel& model, std::size_t layer, const QuantizedTensor& q,
                            std::shared_ptr<const Codec> codec);
void replace_with_quantized(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors);

}  // namespace quench
