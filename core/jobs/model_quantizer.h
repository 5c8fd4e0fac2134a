#pragma once
// Quantizes chosen layers of a loaded model in place, in one walk over the calibration windows (the GPTQ
// sequential pipeline, analysis/block_walk.h): block by block, the inputs of the block's planned layers are
// captured, each layer is quantized with its own codec setting and measured, its weight is replaced by its
// codes (dequantized on use), and the block's outputs, computed with the quantized weights, feed the next
// block. The quantized tensors are kept for export.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analysis/layer_capture.h"
#include "analysis/layer_metrics.h"
#include "model/hidden_states.h"
#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;
class ProgressSink;

struct LayerPlan {
    std::size_t layer;  // registry index
    CodecSpec spec;
};

// Which inputs a block's layers are calibrated on.
enum class CalibInputs {
    Quantized = 1,  // the outputs of the already-quantized blocks before it (default: each layer learns to
                    // correct the error the blocks before it made, as GPTQ does)
    FullPrecision,  // the full-precision model's (each layer alone, as sensitivity measures it)
};
const char* calib_inputs_name(CalibInputs c);            // "quantized", "fp"
CalibInputs calib_inputs_from_name(const std::string& s);  // throws quench::Error naming the choices

struct QuantizeOptions {
    CaptureOptions capture;  // calibration windows; sample_rows feeds the output error
    uint64_t seed = 0;       // per-layer seeds derive from it and the layer name
    CalibInputs calib_inputs = CalibInputs::Quantized;
    // Hessians held at once: a block whose planned layers need more is captured in several passes over its
    // inputs (a 70B block's down_proj alone is 3.3 GB).
    int64_t max_stats_bytes = 1ll << 30;
    // Calibration hidden states kept in memory; beyond it they go to a scratch file in spill_dir.
    int64_t hidden_memory_cap = HiddenStates::kDefaultMemoryCap;
    std::string spill_dir;  // default $TMPDIR, else /tmp (also for quantized codes of a streamed model)
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
