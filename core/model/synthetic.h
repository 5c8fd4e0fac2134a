#pragma once
// Synthetic HF-format checkpoints of real model shapes, for speed, memory and scale work where no real
// checkpoint of that size is available. Weights are seeded random with trained-like statistics: heavy
// tails (a Gaussian scale mixture) and a few outlier input channels per layer.
#include <cstdint>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/model_config.h"

namespace quench {

class ProgressSink;

struct SynthOptions {
    std::string shape = "smollm2-135m";  // one of synthetic_shapes()
    int64_t layers = 0;                  // 0 = the real model's count
    DType dtype = DType::F32;            // F32, F16 or BF16
    uint64_t seed = 0;
    int64_t shard_bytes = 0;             // > 0 splits into shards with model.safetensors.index.json
};

std::vector<std::string> synthetic_shapes();
// The config of a named shape; throws quench::Error listing the known shapes when the name is unknown.
ModelConfig synthetic_config(const std::string& shape);

// Writes config.json, model.safetensors (or shards + index) and a byte-level tokenizer.json into out_dir
// (created if needed). Each file is written atomically; tensors are drawn one at a time as their file is
// written, so a 7B checkpoint is written holding one tensor, not the model.
void write_synthetic_checkpoint(const std::string& out_dir, const SynthOptions& options, ProgressSink* progress = nullptr);

}  // namespace quench
