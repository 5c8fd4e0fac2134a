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
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "alloc/allocation_spec.h"
#include "analysis/eval_windows.h"

namespace quench {

class LlamaModel;
class ProgressSink;

struct SensitivityPoint {
    std::string layer;
    std::string spec;            // canonical
    bool available = true;       // false: the setting does not fit this layer (see error)
    std::string error;           // why it is unavailable
    double bits_per_weight = 0;  // total (codes, scales, codebooks, ...)
    double code_bits_per_weight = 0;
    double output_rel_error = -1;  // on calibration sample rows; -1 when unknown
    bool has_kl = false;           // kl measured (model with only this layer quantized vs full precision)
    double kl = 0, kl_stderr = 0;  // nats per scored token
    double proxy_kl = -1;          // output_rel_error x the layer's factor; -1 when no factor
    double seconds = 0;            // quantize + measure
};

struct SensitivityLayer {
    std::string name;
    std::string kind;  // layer_kind_name()
    int block = -1;
    int64_t out_features = 0, in_features = 0;
    double proxy_factor = -1;  // KL per unit of output error; -1 when not fitted
    bool proxy_factor_global = false;  // true: no usable point of its own, the mean factor over layers
    int64_t weights() const { return out_features * in_features; }
};

// What the numbers depend on: measurements taken under other settings are not mixed (extending checks).
struct SensitivitySettings {
    std::string model;           // directory, informational
    int64_t calib_tokens = 0;    // tokens used for the capture pass
    uint64_t calib_hash = 0;     // FNV-1a of those tokens
    int64_t kl_tokens = 0;
    uint64_t kl_hash = 0;
    int64_t ctx = 0;             // capture and KL window length as resolved
    int64_t sample_rows = 0;
    uint64_t seed = 0;
    bool operator==(const SensitivitySettings& o) const;
};

class Measurements {
public:
    const SensitivitySettings& settings() const { return settings_; }
    bool empty() const { return points_.empty(); }
    const SensitivityPoint* find(const std::string& layer, const std::string& spec) const;
    void set(SensitivityPoint p);  // adds or replaces (layer must have been added)
    void add_layer(const SensitivityLayer& l);  // adds or checks the shape matches (throws quench::Error)
    const SensitivityLayer* layer(const std::string& name) const;
    const std::vector<SensitivityLayer>& layers() const { return layers_; }  // in first-added order
    // Points of one layer in insertion order, and all points.
    std::vector<const SensitivityPoint*> points_of(const std::string& layer) const;
    std::size_t size() const { return points_.size(); }

    // Refits the per-layer proxy factors from every measured KL point, fills proxy_kl and the held-out
    // Spearman correlation. Called by measure_sensitivity; cheap.
    void fit_proxy();
    double proxy_spearman() const { return proxy_spearman_; }  // NaN when fewer than 3 held-out points
    int64_t proxy_points() const { return proxy_points_; }

    nlohmann::json to_json() const;
    // source names the file in error messages: "m.json: layers[1].points[0].kl: expected a number".
    static Measurements from_json(const nlohmann::json& j, const std::string& source);
    void save(const std::string& path) const;  // atomically
    static Measurements load(const std::string& path);

private:
    friend struct SensitivityAccess;
    SensitivitySettings settings_;
    bool settings_set_ = false;
    std::vector<SensitivityLayer> layers_;
    std::map<std::string, std::size_t> layer_index_;
    std::map<std::pair<std::string, std::string>, std::size_t> index_;
    std::vector<SensitivityPoint> points_;
    double proxy_spearman_;
    int64_t proxy_points_ = 0;

public:
    Measurements();
    void set_settings(const SensitivitySettings& s) { settings_ = s; settings_set_ = true; }
    bool has_settings() const { return settings_set_; }
};

struct SensitivityOptions {
    int64_t ctx = 0;            // window length for capture and KL; 0 = min(model max positions, 512)
    int64_t sample_rows = 256;  // calibration input rows kept per layer for the output error
    bool proxy = false;         // measure true KL only on the reference candidates (see top of file)
    int proxy_points = 2;       // reference candidates per layer in proxy mode: 1 = median bits, 2 = + fewest bits
    uint64_t seed = 0;          // per-layer seeds derive from it and the layer name (as quantize_model_layers)
    int64_t max_stats_bytes = int64_t(1) << 30;  // Hessians held at once; more layers capture in several passes
    int64_t kl_batch = 4;
};

struct SensitivityStats {
    int64_t quantize_calls = 0;  // codec quantize() calls made by this run
    int64_t kl_evals = 0;        // evaluate_kl calls made by this run
    int64_t reused = 0;          // (layer, spec) pairs already measured, not redone
    int64_t unavailable = 0;     // pairs recorded unavailable by this run
    int64_t capture_passes = 0;
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

// Spearman rank correlation (average ranks for ties); NaN when fewer than 2 points or a constant side.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace quench
