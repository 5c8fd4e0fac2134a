#pragma once
// Reads Quench's packed checkpoint (docs/packed-format.md): the quantized tensors as their codecs' parts,
// or the whole model with every quantized weight dequantized. load_model (io/model_loading.h) calls
// load_packed_model when config.json's quantization_config.quant_method is "quench", so every command that
// loads a model (quench-cli eval, info, generate) accepts a packed directory as it is.
#include <map>
#include <memory>
#include <string>

#include "model/model_config.h"
#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;
class ProgressSink;

// The quantized tensors by weight name ("model.layers.0.mlp.up_proj.weight"), each part as stored. Parts
// view the memory-mapped file where it is aligned (the tensors keep the mapping alive), else are copied.
// Every descriptor is validated against config.json, the file's tensors and its codec's bit count; a
// failure is a quench::Error naming the file and the tensor, part or field.
std::map<std::string, QuantizedTensor> read_packed_tensors(const std::string& dir);

// The model with each quantized weight dequantized (one at a time) by its codec; everything else is
// mapped from the file as for an HF checkpoint. The dequantized weights equal the ones the quantizer put
// into the model in memory, bit for bit.
std::unique_ptr<LlamaModel> load_packed_model(const std::string& dir, ProgressSink* progress = nullptr);

}  // namespace quench
