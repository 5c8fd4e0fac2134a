// quench-cli info MODEL: what a model directory holds and which layers Quench can quantize.
#include <iostream>

#include "commands.h"
#include "io/model_loading.h"
#include "io/report_json.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"

namespace quench::cli {

Command add_info_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("info", "Show a model's architecture, size, tokenizer and quantizable layers");
    struct Opts {
        std::string model;
        std::string layers;
    };
    auto o = std::make_shared<Opts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    sub->add_option("--layers", o->layers, "Only list layers matching these globs (comma-separated)");
    return {sub, [o, &g] {
                StderrProgress progress(g.quiet || g.json);
                auto model = load_model(o->model, &progress);
                auto tok = load_tokenizer(o->model);
                nlohmann::json j = model_info_json(*model, tok.get());
                if (!o->layers.empty()) {
                    nlohmann::json keep = nlohmann::json::array();
                    for (std::size_t i : model->layers().select_glob(o->layers)) keep.push_back(j["layers"][i]);
                    j["layers"] = keep;
                }
                if (g.json) {
                    std::cout << j.dump(2) << "\n";
                    return;
                }
                Table summary({"property", "value"});
                for (const char* k : {"dir", "architecture", "hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
                                      "max_position_embeddings", "tie_word_embeddings", "torch_dtype", "params",
                                      "quantizable_params", "tensors"})
                    summary.add({k, j[k].is_string() ? j[k].get<std::string>() : j[k].dump()});
                summary.add({"size", fmt_bytes(static_cast<double>(j["bytes"].get<uint64_t>()))});
                summary.add({"tokenizer", tok->kind() + ", " + std::to_string(tok->vocab_size()) + " tokens"});
                std::cout << summary.render() << "\n";
                Table layers({"layer", "kind", "shape", "params"});
                for (const auto& l : j["layers"])
                    layers.add({l["name"].get<std::string>(), l["kind"].get<std::string>(),
                                fmt_shape(l["out_features"], l["in_features"]), l["params"].dump()});
                std::cout << layers.render();
            }};
}

}  // namespace quench::cli
