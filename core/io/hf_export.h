#pragma once
// Exports a model as a plain HF checkpoint in FP16 or BF16: every weight the forward pass reads, as it is
// now (dequantized where a codec replaced it), plus config.json (torch_dtype set, no quantization_config)
// and the tokenizer files. Any HF-compatible tool, and LlamaModel::load, reads the result.
#include <cstdint>
#include <string>

#include "io/model_files.h"
#include "model/dtype.h"

namespace quench {

class LlamaModel;
class ProgressSink;

struct HfExportReport {
    std::string dir;
    uint64_t file_bytes = 0;  // model.safetensors
    int tensors = 0;          // tensors stored
    bool tied = false;        // lm_head stored once, as the embedding (tie_word_embeddings true)
};

// dtype: DType::F16 or DType::BF16 (round to nearest even). Tensors are converted one at a time while the
// file is written, so the export never holds a second copy of the model. The embedding and lm_head stay
// one stored tensor when the model ties them and lm_head was not replaced; a replaced lm_head is stored on
// its own and tie_word_embeddings becomes false. Written into a temporary sibling directory and renamed
// into place at the end: quench::Error or quench::Cancelled leave nothing under out_dir's name.
HfExportReport export_hf_dequantized(const LlamaModel& model, const std::string& out_dir, DType dtype,
                                     ProgressSink* progress = nullptr, const ExportOptions& options = {});

}  // namespace quench
