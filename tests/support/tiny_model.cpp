#include "support/tiny_model.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "model/safetensors_writer.h"
#include "model/model_config.h"

namespace quench::test {

std::string write_tiny_llama(const std::string& dir, const std::string& name, int64_t hidden, int64_t intermediate,
                             int blocks, bool tied) {
    ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.hidden_size = hidden;
    c.intermediate_size = intermediate;
    c.num_hidden_layers = blocks;
    c.tie_word_embeddings = tied;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = hidden / 4;
    c.vocab_size = 2048;
    c.max_position_embeddings = 512;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    const std::string out = dir + "/" + name;
    std::filesystem::create_directories(out);
    std::ofstream(out + "/config.json") << c.to_json_text();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    auto add = [&](const std::string& n, std::vector<int64_t> shape, bool norm) {
        tensors.emplace_back(n, norm ? torch::ones(shape) : torch::randn(shape, gen) * 0.08);
    };
    const int64_t kv = hidden / 2;
    add("model.embed_tokens.weight", {2048, hidden}, false);
    if (!tied) add("lm_head.weight", {2048, hidden}, false);
    add("model.norm.weight", {hidden}, true);
    for (int b = 0; b < blocks; ++b) {
        const std::string p = "model.layers." + std::to_string(b) + ".";
        add(p + "input_layernorm.weight", {hidden}, true);
        add(p + "post_attention_layernorm.weight", {hidden}, true);
        add(p + "self_attn.q_proj.weight", {hidden, hidden}, false);
        add(p + "self_attn.k_proj.weight", {kv, hidden}, false);
        add(p + "self_attn.v_proj.weight", {kv, hidden}, false);
        add(p + "self_attn.o_proj.weight", {hidden, hidden}, false);
        add(p + "mlp.gate_proj.weight", {intermediate, hidden}, false);
        add(p + "mlp.up_proj.weight", {intermediate, hidden}, false);
        add(p + "mlp.down_proj.weight", {hidden, intermediate}, false);
    }
    SafetensorsWriter w;
    for (const auto& [n, t] : tensors) w.add(n, DType::F32, t.sizes().vec(), t.data_ptr(), t.nbytes());
    w.write(out + "/model.safetensors");
    return out;
}

}  // namespace quench::test
