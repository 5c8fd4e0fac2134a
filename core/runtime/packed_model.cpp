#include "runtime/packed_model.h"

#include <torch/torch.h>

#include <map>
#include <optional>
#include <set>
#include <vector>

#include "common/error.h"
#include "io/packed_checkpoint.h"
#include "io/packed_loader.h"
#include "common/progress.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "runtime/packed_linear.h"

namespace quench {

struct PackedModel::Layers {
    std::vector<std::optional<PackedLinear>> by_layer;  // registry index -> kernels; empty when not packed
    uint64_t bytes = 0;
    int count = 0, int8 = 0;
};

PackedModel::PackedModel() : layers_(std::make_unique<Layers>()) {}
PackedModel::~PackedModel() = default;

int PackedModel::packed_layers() const { return layers_->count; }
int PackedModel::int8_layers() const { return layers_->int8; }
uint64_t PackedModel::packed_bytes() const { return layers_->bytes; }

std::unique_ptr<PackedModel> PackedModel::load(const std::string& dir, int threads, ProgressSink* progress,
                                               PackedActivations acts) {
    ProgressSink& prog = progress ? *progress : null_progress();
    prog.report(0.0, "reading packed tensors");
    if (const std::string method = checkpoint_quant_method(dir); method != kPackedQuantMethod)
        throw Error(dir + "/config.json: quantization_config.quant_method is '" + method + "', not '" +
                    kPackedQuantMethod + "': not a packed Quench checkpoint (write one with export --format packed)");
    ModelConfig config = ModelConfig::from_file(dir + "/config.json");
    std::map<std::string, QuantizedTensor> tensors = read_packed_tensors(dir);
    std::vector<std::string> names;
    for (const auto& entry : tensors) names.push_back(entry.first);
    prog.check();
    const bool tied = config.tie_word_embeddings;
    std::unique_ptr<PackedModel> pm(new PackedModel());
    GivenWeights given;
    given.external = names;
    pm->model_ = std::make_unique<LlamaModel>(std::move(config), Checkpoint::open(dir, tied), std::move(given));
    const LayerRegistry& reg = pm->model_->layers();
    Layers& L = *pm->layers_;
    L.by_layer.resize(reg.size());
    std::set<const void*> counted;  // shared parts (codebooks, lift matrices) are read from one place
    for (std::size_t i = 0; i < reg.size(); ++i) {
        auto it = tensors.find(reg.at(i).name + ".weight");
        if (it == tensors.end()) continue;
        for (const auto& part : it->second.parts)
            if (counted.insert(part.data.data_ptr()).second) L.bytes += part.data.nbytes();
        try {
            L.by_layer[i].emplace(std::move(it->second), threads, acts);
        } catch (const Error& e) {
            throw Error(dir + "/model.safetensors: tensor '" + it->first + "': " + e.what());
        }
        ++L.count;
        L.int8 += L.by_layer[i]->int8_activations() ? 1 : 0;
        prog.report(static_cast<double>(i + 1) / static_cast<double>(reg.size()), "packing " + it->first);
    }
    pm->override_ = [layers = pm->layers_.get()](std::size_t layer, const at::Tensor& x) -> at::Tensor {
        if (layer >= layers->by_layer.size() || !layers->by_layer[layer]) return {};
        return layers->by_layer[layer]->forward(x);
    };
    prog.report(1.0, "loaded");
    return pm;
}

}  // namespace quench
