#pragma once
// What an export of a model as it stands (quantized layers in, dequantized) will write, worked out before
// writing it: the ggml type of each GGUF tensor, from its layer's codec, and the size of the files. The
// workbench's export dialog and quench-cli export both ask here, so they show the same estimate and write
// the same types.
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "io/gguf_export.h"
#include "quant/codec_registry.h"
#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;

// ExportFormat and export_format_name: quant/codec_registry.h (a codec's row says which formats it allows).
// Throws quench::Error naming the text when it is none of those.
ExportFormat export_format_from_name(const std::string& name);

// The GGUF options of an export: `type` (a ggml type name, "q4_k") for every 2-D weight when given; otherwise
// each quantized layer (tensors, by registry index) gets the type nearest in bits to its codec
// (gguf_type_for_codec) and the rest F16. Then each override "GGUF_NAME=TYPE" ("output.weight=q6_k") sets one
// tensor. Throws quench::Error naming an unknown type or an override without '='.
GgufExportOptions gguf_export_options(const LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors,
                                      const std::string& type = "", const std::vector<std::string>& overrides = {});

// The export's tensor data in bytes, before writing: packed stores the quantized layers' parts (their total
// bits) and copies the rest as stored; hf writes 2 bytes per weight; gguf each 2-D weight in the type `gguf`
// gives it (fitted to its row length as the exporter does) and the rest as F32. Tied tensors (lm_head =
// embedding) count once unless replaced, as the exporters write them. Headers and tokenizer files are left
// out: a few kilobytes.
double estimate_export_bytes(const LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors,
                             ExportFormat format, const GgufExportOptions& gguf = {});

}  // namespace quench
