#pragma once
// Writes Quench's packed quantized checkpoint ("quench-packed", version 1; spec in docs/packed-format.md):
// an HF-like model directory whose model.safetensors holds each quantized weight as its codec's parts,
// exactly as the codec produced them (kernels read them directly), every other tensor copied as stored,
// and a per-tensor descriptor in the safetensors __metadata__. config.json gains a quantization_config.
// io/packed_loader.h reads it back.
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "io/model_files.h"
#include "model/dtype.h"
#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;
class ProgressSink;

// Names shared by the writer, the loader and the spec.
inline constexpr const char* kPackedFormat = "quench-packed";
inline constexpr int kPackedFormatVersion = 1;
inline constexpr const char* kPackedQuantMethod = "quench";  // config.json quantization_config.quant_method
inline constexpr const char* kPackedDescriptorPrefix = "quench.tensor.";  // __metadata__ key of a descriptor
inline constexpr const char* kPackedSharedPrefix = "quench.shared.";      // tensor name prefix of a shared part

// The safetensors dtype of a part's data; quench::Error for types a part may not have (bool, complex).
DType packed_part_dtype(const at::Tensor& t, const std::string& where);
at::ScalarType packed_scalar_type(DType d);

struct PackedWriteReport {
    std::string dir;
    uint64_t file_bytes = 0;         // model.safetensors on disk
    uint64_t header_bytes = 0;       // its 8-byte length and JSON header (with padding)
    int64_t quantized_params = 0;    // weights of the quantized tensors
    int64_t quantized_bits = 0;      // their parts' bits, each shared part counted once
    uint64_t part_bytes = 0;         // bytes the parts take (whole bytes per part)
    uint64_t unquantized_bytes = 0;  // tensors copied as stored
    int quantized_tensors = 0, copied_tensors = 0, shared_parts = 0, aliases = 0;
    double total_bits_per_weight() const {
        return quantized_params ? static_cast<double>(quantized_bits) / static_cast<double>(quantized_params) : 0.0;
    }
    // quantized params x total bpw / 8 + unquantized bytes: the size with no header and no byte rounding.
    double ideal_bytes() const {
        return static_cast<double>(quantized_bits) / 8.0 + static_cast<double>(unquantized_bytes);
    }
};

// Writes model's checkpoint with the given quantized tensors (registry index -> tensor, as
// QuantizeResult::tensors) into out_dir, built in a temporary sibling and renamed into place at the end.
// Every layer the model has replaced must be among the tensors, and each tensor's shape must be its
// layer's. Throws quench::Error naming the file or tensor, quench::Cancelled from progress; either way no
// directory appears under out_dir's name.
PackedWriteReport write_packed_checkpoint(const LlamaModel& model,
                                          const std::map<std::size_t, QuantizedTensor>& tensors,
                                          const std::string& out_dir, ProgressSink* progress = nullptr,
                                          const ExportOptions& options = {});

}  // namespace quench
