#pragma once
// Records what chosen linear layers see on calibration windows, reduced as it streams: the input Hessian
// sum X^T X, per-input-channel mean |x| (activation scale), and an evenly spread sample of input rows for
// output-error measurement. Activations of the whole model are never held.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <vector>

#include "model/llama_model.h"

namespace quench {

class ProgressSink;

struct CaptureOptions {
    int64_t ctx = 0;          // window length; 0 = min(model max positions, 512)
    int64_t max_tokens = 0;   // 0 = all calibration tokens
    int64_t batch = 4;
    bool hessian = true;      // accumulate X^T X ([in, in] fp32 per layer)
    int64_t sample_rows = 0;  // keep up to this many input rows per layer
};

struct LayerInputStats {
    at::Tensor xtx;       // sum over rows of x^T x, [in, in] fp32 (undefined unless options.hessian)
    at::Tensor abs_mean;  // mean |x| per input channel, [in]
    at::Tensor sample;    // [<= sample_rows, in]
    int64_t rows = 0;     // rows seen
    at::Tensor hessian() const;  // xtx / rows: the mean input second moment GPTQ uses
};

// Accumulates LayerInputStats for chosen layers from the inputs a pass reports through hook(), one batch of
// windows at a time; sample rows are spread evenly over the n_batches batches the caller will run.
class InputStatsAccumulator {
public:
    InputStatsAccumulator(const LayerRegistry& registry, const std::vector<std::size_t>& layers, const CaptureOptions& o,
                          int64_t n_batches);
    // The hook captures this accumulator: it must stay where it was made.
    InputStatsAccumulator(const InputStatsAccumulator&) = delete;
    InputStatsAccumulator& operator=(const InputStatsAccumulator&) = delete;
    // The hook to give the passes; valid while the accumulator lives. Inputs of other layers are ignored.
    const LinearInputHook& hook() const { return hook_; }
    std::map<std::size_t, LayerInputStats> finish();  // once, after the last batch

private:
    std::map<std::size_t, LayerInputStats> stats_;
    std::map<std::size_t, at::Tensor> abs_sum_;
    std::map<std::size_t, std::vector<at::Tensor>> samples_;
    int64_t rows_per_batch_ = 0, sample_rows_ = 0;
    LinearInputHook hook_;
};

// The calibration windows a capture takes from tokens: options.ctx resolved for the model (0: min(max
// positions, 512)), cut to max_tokens, whole windows only, as int64 [windows, ctx]. Throws quench::Error when
// there is not one window.
at::Tensor capture_windows(const LlamaModel& model, const std::vector<int32_t>& tokens, CaptureOptions& options);

// Runs the model (current weights) on non-overlapping windows of tokens and returns stats per requested
// registry index. Throws quench::Error on an unknown layer index, quench::Cancelled when cancelled.
std::map<std::size_t, LayerInputStats> capture_layer_inputs(const LlamaModel& model, const std::vector<std::size_t>& layers,
                                                            const std::vector<int32_t>& tokens, CaptureOptions options,
                                                            ProgressSink* progress = nullptr);

}  // namespace quench
