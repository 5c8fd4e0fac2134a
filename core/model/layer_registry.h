#pragma once
// The quantizable linear layers of a model, by their HF names (model.layers.3.mlp.down_proj), with shape,
// parameter count, block index and kind; selection by glob or regex. Torch-free so the GUI and the CLI can
// list layers cheaply.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quench {

enum class LayerKind { Q = 1, K, V, O, Gate, Up, Down, LmHead };

const char* layer_kind_name(LayerKind k);  // "q", "k", ..., "lm_head"
std::optional<LayerKind> layer_kind_from_name(const std::string& s);

// What a chart axis or a table row shows for a layer: "3.down" for model.layers.3.mlp.down_proj, "0.q" for
// model.layers.0.self_attn.q_proj ("<block>.<module without _proj>"), "lm_head" for lm_head; a name with no
// "layers.<n>." part is returned whole. Views keep the full name for tooltips.
std::string short_layer_name(const std::string& name);

struct LayerInfo {
    std::string name;  // HF module name without ".weight"
    int block = -1;    // transformer block index; -1 for lm_head
    LayerKind kind = LayerKind::Q;
    int64_t out_features = 0;
    int64_t in_features = 0;
    int64_t params() const { return out_features * in_features; }
    std::string weight_name() const { return name + ".weight"; }
};

class LayerRegistry {
public:
    LayerRegistry() = default;
    explicit LayerRegistry(std::vector<LayerInfo> layers) : layers_(std::move(layers)) {}

    const std::vector<LayerInfo>& all() const { return layers_; }
    std::size_t size() const { return layers_.size(); }
    const LayerInfo& at(std::size_t i) const { return layers_.at(i); }
    std::optional<std::size_t> index_of(const std::string& name) const;  // accepts with or without ".weight"

    // Shell-style glob over names ("model.layers.*.mlp.*", "*q_proj"); several globs separated by commas.
    // Throws quench::Error when nothing matches so a typo never silently selects no layer.
    std::vector<std::size_t> select_glob(const std::string& globs) const;
    // ECMAScript regex searched in each name; throws quench::Error on a bad pattern or an empty selection.
    std::vector<std::size_t> select_regex(const std::string& pattern) const;
    std::vector<std::size_t> select_kind(LayerKind kind) const;
    int64_t total_params() const;

private:
    std::vector<LayerInfo> layers_;
};

}  // namespace quench
