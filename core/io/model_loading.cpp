#include "io/model_loading.h"

#include "io/packed_loader.h"
#include "model/llama_model.h"
#include "model/model_config.h"

namespace quench {

std::unique_ptr<LlamaModel> load_model(const std::string& dir, ProgressSink* progress) {
    if (checkpoint_quant_method(dir) == "quench") return load_packed_model(dir, progress);
    return LlamaModel::load(dir, progress);
}

}  // namespace quench
