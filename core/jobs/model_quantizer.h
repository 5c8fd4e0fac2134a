#pragma once
// Quantizes chosen layers of a loaded model in place: calibration statistics are captured a chunk of
// layers at a time (bounded memory, and later chunks see the already-quantized prefix, as GPTQ does),
// each layer is quantized with its own codec setting, measured, and its weight replaced by the
// dequantized one. The quantized tensors are kept for export.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analysis/layer_capture.h"
#include "analysis/layer_metrics.h"
#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;
class ProgressSink;

struct LayerPlan {
    std::size_t layer;  // registry index
    CodecSpec spec;
};

struct QuantizeOptions {
    CaptureOptions capture;               // calibration windows; sample_rows feeds the output error
    uint64_t seed = 0;                    // per-layer seeds derive from it and the layer name
    int64_t max_stats_bytes = 1ll << 30;  // Hessians held at once; bigger plans capture in several passes
    QuantizeOptions() { capture.sample_rows = 512; }
};

struct LayerResult {
    std::size_t layer;
    std::string name;
    CodecSpec spec;
    LayerMetrics metrics;
    std::string transform;  // Codec::transform_note for this layer's shape ("hadamard 64"); "" for none
};

struct QuantizeResult {
    std::vector<LayerResult> layers;                 // in plan order
    std::map<std::size_t, QuantizedTensor> tensors;  // by registry index
    double seconds = 0;
    double total_bits_per_weight() const;  // over the quantized layers, shared parts counted once
};

// The seed a layer's codec gets from the run's seed: the same wherever the layer is quantized (quantize,
// sensitivity, apply), so a measured setting is reproduced exactly.
uint64_t layer_seed(uint64_t seed, const std::string& name);

// One codec for several layers.
std::vector<LayerPlan> uniform_plan(const std::vector<std::size_t>& layers, const CodecSpec& spec);

class LayerRegistry;
// Every planned layer whose shape its setting cannot take, as "name (the codec's reason)", in plan order;
// empty when all fit. The CLI, the quantizer and the GUI's bits estimate say all of them before running.
std::vector<std::string> refused_layers(const LayerRegistry& layers, const std::vector<LayerPlan>& plan);
// The bits a plan will cost, without quantizing: every layer's parts, each shared part (a lift matrix, a
// codebook) once per setting, exactly as QuantizeResult::total_bits_per_weight() counts the result. The one
// definition of bits every estimate, run, allocation and export uses. Throws for a refused layer.
struct PlanBits {
    double bits = 0;
    int64_t weights = 0;
    double bits_per_weight() const { return weights > 0 ? bits / double(weights) : 0.0; }
};
// after_qat: the bits once QAT has trained the plan's layers (each codec row's qat_bits; a setting without a
// QAT form costs what it does after PTQ), so the cost of training is shown before it starts.
PlanBits estimate_plan_bits(const LayerRegistry& layers, const std::vector<LayerPlan>& plan, bool after_qat = false);
// "N of M layers cannot take their setting: a (why); b (why); ... and K more": the first four named.
std::string refusal_text(const std::vector<std::string>& refused, std::size_t planned);

// calib_tokens may be empty when no codec needs calibration (then output_rel_error stays -1).
// Throws quench::Error (bad shapes, missing calibration), quench::Cancelled.
QuantizeResult quantize_model_layers(LlamaModel& model, const std::vector<LayerPlan>& plan,
                                     const std::vector<int32_t>& calib_tokens, const QuantizeOptions& options,
                                     ProgressSink* progress = nullptr);

}  // namespace quench
