#pragma once
// A packed checkpoint run the way a runtime runs it: every quantized linear layer is a PackedLinear whose
// kernels read the file's codes in place, so no dense copy of those weights exists at any time (the model
// holds zero-stride placeholders for them). Everything else (embeddings, norms, unquantized layers) is
// mapped from the file as for an HF checkpoint. Evaluate it with ModelSide{&model(), Current, &linear()}.
#include <cstdint>
#include <memory>
#include <string>

#include "model/llama_model.h"
#include "runtime/packed_linear.h"

namespace quench {

class ProgressSink;

class PackedModel {
public:
    // dir: a directory written by write_packed_checkpoint (config.json quant_method "quench"). threads:
    // kernel threads for a call of up to 8 rows (0 = all cores); longer inputs run batches of 8 rows in
    // parallel instead. acts: see PackedLinear (Int8: int8 activations where a layer's kernel has them).
    // quench::Error naming the file and tensor when a tensor has no packed kernel.
    static std::unique_ptr<PackedModel> load(const std::string& dir, int threads = 0, ProgressSink* progress = nullptr,
                                             PackedActivations acts = PackedActivations::Fp32);
    ~PackedModel();

    const LlamaModel& model() const { return *model_; }
    // Computes the packed layers and returns an undefined tensor for the others (the model's own weights).
    const LinearOverride& linear() const { return override_; }
    int packed_layers() const;
    int int8_layers() const;  // packed layers whose kernels quantize their input to int8
    uint64_t packed_bytes() const;  // bytes of the parts the kernels read

private:
    PackedModel();
    struct Layers;
    std::unique_ptr<Layers> layers_;
    std::unique_ptr<LlamaModel> model_;
    LinearOverride override_;
};

}  // namespace quench
