#pragma once
// Sensitivity measurements: per layer and codec setting, its bits, output error and single-layer KL (what
// jobs/sensitivity.h measures and the allocator prices). Kept by (layer, canonical spec), extended by later
// runs, saved as JSON; the KL proxy (output error x a per-layer factor, see jobs/sensitivity.h) is fitted here.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace quench {

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

// Spearman rank correlation (average ranks for ties); NaN when fewer than 2 points or a constant side.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace quench
