#include "model/model_config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_file.h"
#include "common/read_file.h"

namespace quench {
namespace {

using nlohmann::json;

const json& require(const json& j, const char* key, const std::string& src) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) throw Error(src + ": missing required key '" + key + "'");
    return *it;
}

int64_t require_positive_int(const json& j, const char* key, const std::string& src) {
    const json& v = require(j, key, src);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
        throw Error(src + ": key '" + key + "' must be a positive integer, got " + v.dump());
    return v.get<int64_t>();
}

template <typename T>
T optional_number(const json& j, const char* key, T fallback, const std::string& src) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_number()) throw Error(src + ": key '" + key + "' must be a number, got " + it->dump());
    return it->get<T>();
}

// bos/eos may be an int or a list of ints (Llama 3 lists several EOS ids; the first is used).
int64_t token_id(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return -1;
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) return (*it)[0].get<int64_t>();
    return -1;
}

void parse_rope_scaling(const json& j, ModelConfig& c, const std::string& src) {
    auto it = j.find("rope_scaling");
    if (it == j.end() || it->is_null()) return;
    if (!it->is_object()) throw Error(src + ": key 'rope_scaling' must be an object or null");
    const json& rs = *it;
    std::string type = rs.value("rope_type", rs.value("type", std::string()));
    if (type == "default" || type.empty()) return;
    c.rope_factor = optional_number<double>(rs, "factor", 1.0, src);
    if (type == "linear") {
        c.rope_scaling = RopeScaling::Linear;
    } else if (type == "llama3") {
        c.rope_scaling = RopeScaling::Llama3;
        c.rope_low_freq_factor = optional_number<double>(rs, "low_freq_factor", 1.0, src);
        c.rope_high_freq_factor = optional_number<double>(rs, "high_freq_factor", 4.0, src);
        c.rope_original_max_positions =
            optional_number<int64_t>(rs, "original_max_position_embeddings", 8192, src);
    } else {
        throw Error(src + ": rope_scaling type '" + type + "' is not supported (none, linear and llama3 are)");
    }
    if (c.rope_factor <= 0) throw Error(src + ": rope_scaling.factor must be positive");
}

// Which blocks attend through a sliding window, as transformers reads it for each architecture (a Llama
// config has no such field: transformers ignores one there, and so does Quench).
void parse_sliding_window(const json& j, ModelConfig& c, const std::string& src) {
    const auto n = static_cast<std::size_t>(c.num_hidden_layers);
    const bool mistral = c.architecture == "MistralForCausalLM", qwen2 = c.architecture == "Qwen2ForCausalLM";
    if (!(mistral || (qwen2 && j.value("use_sliding_window", false)))) return;
    // transformers' defaults where the key is absent: 4096 for both, max_window_layers 28 for Qwen2.
    const auto it = j.find("sliding_window");
    if (it != j.end() && it->is_null()) return;
    c.sliding_window = it == j.end() ? 4096 : require_positive_int(j, "sliding_window", src);
    c.sliding_blocks.assign(n, true);
    if (qwen2) {
        const int64_t first = optional_number<int64_t>(j, "max_window_layers", 28, src);
        for (std::size_t b = 0; b < n; ++b) c.sliding_blocks[b] = static_cast<int64_t>(b) >= first;
    }
    const auto types = j.find("layer_types");
    if (types != j.end() && !types->is_null()) {
        if (!types->is_array() || types->size() != n)
            throw Error(src + ": key 'layer_types' must list one type per layer (" + std::to_string(n) + ")");
        for (std::size_t b = 0; b < n; ++b) {
            const std::string t = (*types)[b].is_string() ? (*types)[b].get<std::string>() : "";
            if (t != "full_attention" && t != "sliding_attention")
                throw Error(src + ": layer_types[" + std::to_string(b) + "] '" + t +
                            "' is not supported (full_attention and sliding_attention are)");
            c.sliding_blocks[b] = t == "sliding_attention";
        }
    }
}

}  // namespace

ModelConfig ModelConfig::from_file(const std::string& path) {
    return from_json_text(read_file(path, "config.json"), path);
}

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& src) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(src + ": not a JSON object");
    ModelConfig c;
    const json& archs = require(j, "architectures", src);
    if (!archs.is_array() || archs.empty() || !archs[0].is_string())
        throw Error(src + ": key 'architectures' must be a non-empty list of strings");
    c.architecture = archs[0].get<std::string>();
    if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM" &&
        c.architecture != "Qwen2ForCausalLM")
        throw Error(src + ": architecture '" + c.architecture +
                    "' is not supported (LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM are)");
    c.model_type = j.value("model_type", std::string());
    c.hidden_size = require_positive_int(j, "hidden_size", src);
    c.intermediate_size = require_positive_int(j, "intermediate_size", src);
    c.num_hidden_layers = require_positive_int(j, "num_hidden_layers", src);
    c.num_attention_heads = require_positive_int(j, "num_attention_heads", src);
    c.vocab_size = require_positive_int(j, "vocab_size", src);
    c.num_key_value_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                                ? require_positive_int(j, "num_key_value_heads", src)
                                : c.num_attention_heads;
    if (c.num_attention_heads % c.num_key_value_heads != 0)
        throw Error(src + ": num_attention_heads (" + std::to_string(c.num_attention_heads) +
                    ") is not a multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) + ")");
    if (j.contains("head_dim") && !j["head_dim"].is_null()) {
        c.head_dim = require_positive_int(j, "head_dim", src);
    } else {
        if (c.hidden_size % c.num_attention_heads != 0)
            throw Error(src + ": hidden_size is not a multiple of num_attention_heads and no head_dim is given");
        c.head_dim = c.hidden_size / c.num_attention_heads;
    }
    if (c.head_dim % 2 != 0) throw Error(src + ": head_dim must be even for rotary embeddings");
    c.max_position_embeddings = optional_number<int64_t>(j, "max_position_embeddings", 2048, src);
    c.rms_norm_eps = optional_number<double>(j, "rms_norm_eps", 1e-6, src);
    c.rope_theta = optional_number<double>(j, "rope_theta", 10000.0, src);
    parse_rope_scaling(j, c, src);
    // Qwen2 always has q/k/v biases; Llama may declare them with attention_bias.
    c.attention_bias = c.architecture == "Qwen2ForCausalLM" || j.value("attention_bias", false);
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    c.bos_token_id = token_id(j, "bos_token_id");
    c.eos_token_id = token_id(j, "eos_token_id");
    c.torch_dtype = j.value("torch_dtype", std::string("float32"));
    std::string act = j.value("hidden_act", std::string("silu"));
    if (act != "silu") throw Error(src + ": hidden_act '" + act + "' is not supported (silu is)");
    if (j.value("mlp_bias", false)) throw Error(src + ": mlp_bias true is not supported (MLP layers without biases are)");
    parse_sliding_window(j, c, src);
    return c;
}

std::string ModelConfig::to_json_text() const {
    json j;
    j["architectures"] = {architecture};
    j["model_type"] = model_type.empty() ? (architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama") : model_type;
    j["hidden_size"] = hidden_size;
    j["intermediate_size"] = intermediate_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["num_key_value_heads"] = num_key_value_heads;
    j["head_dim"] = head_dim;
    j["vocab_size"] = vocab_size;
    j["max_position_embeddings"] = max_position_embeddings;
    j["rms_norm_eps"] = rms_norm_eps;
    j["rope_theta"] = rope_theta;
    j["hidden_act"] = "silu";
    j["attention_bias"] = attention_bias;
    j["tie_word_embeddings"] = tie_word_embeddings;
    if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
    if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
    j["torch_dtype"] = torch_dtype;
    if (sliding_window > 0) {
        j["sliding_window"] = sliding_window;
        json types = json::array();
        for (bool s : sliding_blocks) types.push_back(s ? "sliding_attention" : "full_attention");
        j["layer_types"] = types;
        if (architecture == "Qwen2ForCausalLM") {
            // Older transformers read the window's blocks from these two keys, not from layer_types.
            j["use_sliding_window"] = true;
            int64_t first = num_hidden_layers;
            while (first > 0 && sliding_blocks[static_cast<std::size_t>(first - 1)]) --first;
            j["max_window_layers"] = first;
        }
    } else if (architecture == "MistralForCausalLM") {
        j["sliding_window"] = nullptr;
    }
    switch (rope_scaling) {
        case RopeScaling::None: j["rope_scaling"] = nullptr; break;
        case RopeScaling::Linear: j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_factor}}; break;
        case RopeScaling::Llama3:
            j["rope_scaling"] = {{"rope_type", "llama3"},
                                 {"factor", rope_factor},
                                 {"low_freq_factor", rope_low_freq_factor},
                                 {"high_freq_factor", rope_high_freq_factor},
                                 {"original_max_position_embeddings", rope_original_max_positions}};
            break;
    }
    return j.dump(2);
}

std::string checkpoint_quant_method(const std::string& dir) {
    try {
        const json config = read_json_file(dir + "/config.json");
        const auto qc = config.is_object() ? config.find("quantization_config") : config.end();
        if (qc == config.end() || qc->is_null()) return "";
        const auto m = qc->is_object() ? qc->find("quant_method") : qc->end();
        return m != qc->end() && m->is_string() ? m->get<std::string>() : "(unspecified)";
    } catch (const Error&) {
        return "";
    }
}

}  // namespace quench
