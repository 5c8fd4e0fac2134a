#pragma once
// Per-layer sensitivity to quantization, for bit allocation: for each selected layer and candidate codec
// setting, its total bits per weight, its output error on calibration rows, and the model-level mean KL
// against full precision when only that layer is quantized with that setting. Measurements are kept by
// (layer, canonical spec), saved as JSON and extended: a later run measures only the missing pairs.
//
// Proxy mode (large models): true KL is measured only for a few candidates per layer (the one with the
// median bits and the one with the fewest); every other point's KL is predicted as output error x a
// per-layer factor (the geometric mean of KL / output error over the layer's measured points). The proxy's
// quality is reported as the Spearman correlation, over every measured point of a layer with at least two,
// between the true KL and the proxy fitted from that layer's *other* measured points (held out).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "alloc/allocation_spec.h"
#include "analysis/measurements.h"
#include "model/hidden_states.h"

namespace quench {

class LlamaModel;
class ProgressSink;

struct SensitivityOptions {
    int64_t ctx = 0;            // window length for capture and KL; 0 = min(model max positions, 512)
    int64_t sample_rows = 256;  // calibration input rows kept per layer for the output error
    bool proxy = false;         // measure true KL only on the reference candidates (see top of file)
    int proxy_points = 2;       // reference candidates per layer in proxy mode: 1 = median bits, 2 = + fewest bits
    uint64_t seed = 0;          // per-layer seeds derive from it and the layer name (as quantize_model_layers)
    int64_t max_stats_bytes = int64_t(1) << 30;  // Hessians held at once; more layers capture in several passes
    int64_t kl_batch = 4;
    // Hidden states of the calibration and KL windows kept in memory; beyond it they go to a scratch file in
    // spill_dir (default $TMPDIR, else /tmp), as do the KL reference's log-probabilities.
    int64_t hidden_memory_cap = HiddenStates::kDefaultMemoryCap;
    std::string spill_dir;
    // Called on the measuring thread each time a pair is stored in the measurements (measured or found
    // unavailable), so a view can fill in as the job runs rather than at its end.
    std::function<void(const SensitivityLayer&, const SensitivityPoint&)> on_point;
};

struct SensitivityStats {
    int64_t quantize_calls = 0;  // codec quantize() calls made by this run
    int64_t kl_evals = 0;        // KL measurements made by this run
    int64_t reused = 0;          // (layer, spec) pairs already measured, not redone
    int64_t unavailable = 0;     // pairs recorded unavailable by this run
    int64_t capture_passes = 0;  // block passes that captured layer inputs (one walk moves between them)
    double seconds = 0;
};

// Canonical spec texts from a list of spec strings (each parsed; throws quench::Error naming the bad one).
// A list string separates specs with ';' (specs contain commas).
std::vector<std::string> parse_candidate_list(const std::string& list);

// Measures the missing (layer, candidate) pairs into m. The model's weights are restored afterwards (also on
// error or cancellation); the model must have no replaced weights on entry. kl_tokens: the fixed KL sample
// (BOS at its start); calib_tokens: the capture pass. Throws quench::Error (settings differ from m's,
// no tokens), quench::Cancelled (m keeps the pairs finished so far).
SensitivityStats measure_sensitivity(LlamaModel& model, const std::vector<std::size_t>& layers,
                                     const std::vector<std::string>& candidates,
                                     const std::vector<int32_t>& calib_tokens, const std::vector<int32_t>& kl_tokens,
                                     int32_t bos_id, const SensitivityOptions& options, Measurements& m,
                                     ProgressSink* progress = nullptr);

// Where an allocation's per-candidate cost comes from.
enum class CostSource {
    Kl,     // measured KL only; unmeasured points are left out
    Proxy,  // proxy_kl for every point
    Auto,   // measured KL where there is one, else proxy_kl
};
const char* cost_source_name(CostSource s);
CostSource cost_source_from_name(const std::string& s);  // "kl", "proxy", "auto"; throws quench::Error

// The allocation problem's layers and candidates (no constraints set). Unavailable points and points without
// a cost under `source` are left out; layers left with no candidate are an error naming them all.
AllocationSpec to_allocation_spec(const Measurements& m, CostSource source);


}  // namespace quench
