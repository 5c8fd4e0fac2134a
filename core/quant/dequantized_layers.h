#pragma once
// Puts quantized layers into a model: each layer's current weight becomes its codec's dequantization of the
// stored parts. The one way every job (QAT, export from a run, the workbench after a job restored the
// model) makes a model compute with quantized layers; codecs are built once per setting.
#include <cstddef>
#include <map>

#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;

void replace_with_dequantized(LlamaModel& model, std::size_t layer, const QuantizedTensor& q);
void replace_with_dequantized(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors);

}  // namespace quench
