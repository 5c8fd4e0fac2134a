#pragma once
// The subset of an HF config.json that the Llama-family forward pass needs.
#include <cstdint>
#include <string>
#include <vector>

namespace quench {

enum class RopeScaling { None = 1, Linear, Llama3 };

struct ModelConfig {
    std::string architecture;  // "LlamaForCausalLM", "MistralForCausalLM" or "Qwen2ForCausalLM"
    std::string model_type;
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;  // GQA: heads share K/V in groups of num_attention_heads / num_key_value_heads
    int64_t head_dim = 0;             // hidden_size / num_attention_heads unless config.json says otherwise
    int64_t vocab_size = 0;
    int64_t max_position_embeddings = 2048;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling = RopeScaling::None;
    double rope_factor = 1.0;              // linear and llama3
    double rope_low_freq_factor = 1.0;     // llama3
    double rope_high_freq_factor = 4.0;    // llama3
    int64_t rope_original_max_positions = 8192;  // llama3
    bool attention_bias = false;  // Qwen2 has q/k/v biases
    // Sliding-window attention: a query at position i sees keys j with i - window < j <= i (HF's definition)
    // in the blocks marked here; 0 (or no block marked) is full causal attention. Mistral: sliding_window
    // in every block; Qwen2: only with use_sliding_window, in blocks from max_window_layers on; a config's
    // layer_types list, when present, says it per block.
    int64_t sliding_window = 0;
    std::vector<bool> sliding_blocks;  // num_hidden_layers entries when sliding_window > 0
    bool tie_word_embeddings = false;
    int64_t bos_token_id = -1;
    int64_t eos_token_id = -1;
    std::string torch_dtype = "float32";

    // Parses config.json; throws quench::Error naming the file and the missing or invalid key, or the
    // unsupported architecture.
    static ModelConfig from_file(const std::string& config_json_path);
    static ModelConfig from_json_text(const std::string& json_text, const std::string& source_name);
    std::string to_json_text() const;  // an HF-compatible config.json

    int64_t kv_dim() const { return num_key_value_heads * head_dim; }
    // The attention window of a block: sliding_window where it applies, else 0 (full).
    int64_t window_of(int64_t block) const {
        return sliding_window > 0 && sliding_blocks.at(static_cast<std::size_t>(block)) ? sliding_window : 0;
    }
};

// config.json's quantization_config.quant_method; "" when config.json has none (or cannot be read: the
// ordinary loader then reports that).
std::string checkpoint_quant_method(const std::string& dir);

}  // namespace quench
