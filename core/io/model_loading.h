#pragma once
// Opens any model directory a user points Quench at: a plain HF checkpoint (LlamaModel::load) or Quench's
// own packed format (load_packed_model, its quantized weights dequantized). The one entry point for the
// CLI, the GUI and every job, so that a packed directory is accepted wherever a model is.
#include <memory>
#include <string>

namespace quench {

class LlamaModel;
class ProgressSink;

std::unique_ptr<LlamaModel> load_model(const std::string& dir, ProgressSink* progress = nullptr);

}  // namespace quench
