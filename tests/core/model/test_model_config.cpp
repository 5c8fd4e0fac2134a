// config.json parsing: the real file, the three supported architectures, rope scaling, sliding windows as
// transformers reads them, and clear errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/model_config.h"
#include "support/test_paths.h"

using namespace quench;

namespace {
std::string base(const std::string& arch, const std::string& extra = "") {
    return R"({"architectures":[")" + arch +
           R"("],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
              "num_key_value_heads":2,"vocab_size":100)" + extra + "}";
}
void expect_config_error(const std::string& json, const std::string& fragment) {
    try {
        ModelConfig::from_json_text(json, "cfg.json");
        FAIL() << "no error for " << json;
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}
}  // namespace

TEST(ModelConfig, RealModel) {
    auto c = ModelConfig::from_file(test::real_model_dir() + "/config.json");
    EXPECT_EQ(c.architecture, "LlamaForCausalLM");
    EXPECT_EQ(c.hidden_size, 128);
    EXPECT_EQ(c.intermediate_size, 384);
    EXPECT_EQ(c.num_hidden_layers, 2);
    EXPECT_EQ(c.num_attention_heads, 8);
    EXPECT_EQ(c.num_key_value_heads, 4);
    EXPECT_EQ(c.vocab_size, 2048);
    EXPECT_EQ(c.max_position_embeddings, 512);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.rope_scaling, RopeScaling::None);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_FALSE(c.attention_bias);
    EXPECT_EQ(c.bos_token_id, 1);
}

TEST(ModelConfig, ArchitecturesAndDefaults) {
    auto mistral = ModelConfig::from_json_text(base("MistralForCausalLM"), "m");
    EXPECT_FALSE(mistral.attention_bias);
    EXPECT_EQ(mistral.head_dim, 16);
    auto qwen = ModelConfig::from_json_text(base("Qwen2ForCausalLM"), "q");
    EXPECT_TRUE(qwen.attention_bias);  // Qwen2 always has q/k/v biases
    auto mha = ModelConfig::from_json_text(
        R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10})",
        "x");
    EXPECT_EQ(mha.num_key_value_heads, 4);  // no GQA key: one KV head per query head
    auto eos_list = ModelConfig::from_json_text(base("LlamaForCausalLM", R"(,"eos_token_id":[128001,128009])"), "l3");
    EXPECT_EQ(eos_list.eos_token_id, 128001);
}

TEST(ModelConfig, RopeScaling) {
    auto lin = ModelConfig::from_json_text(base("LlamaForCausalLM", R"(,"rope_scaling":{"type":"linear","factor":4.0})"), "x");
    EXPECT_EQ(lin.rope_scaling, RopeScaling::Linear);
    EXPECT_DOUBLE_EQ(lin.rope_factor, 4.0);
    auto l3 = ModelConfig::from_json_text(
        base("LlamaForCausalLM",
             R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})"),
        "x");
    EXPECT_EQ(l3.rope_scaling, RopeScaling::Llama3);
    EXPECT_DOUBLE_EQ(l3.rope_high_freq_factor, 4.0);
    expect_config_error(base("LlamaForCausalLM", R"(,"rope_scaling":{"type":"yarn","factor":4.0})"), "yarn");
}

TEST(ModelConfig, RoundTripsThroughJson) {
    auto c = ModelConfig::from_json_text(base("Qwen2ForCausalLM", R"(,"rope_scaling":{"type":"linear","factor":2.0})"), "x");
    auto back = ModelConfig::from_json_text(c.to_json_text(), "y");
    EXPECT_EQ(back.architecture, c.architecture);
    EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads);
    EXPECT_EQ(back.rope_scaling, RopeScaling::Linear);
    EXPECT_DOUBLE_EQ(back.rope_factor, 2.0);
}

TEST(ModelConfig, MissingKeyNamesTheKey) {
    expect_config_error(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64})", "intermediate_size");
}
TEST(ModelConfig, UnsupportedArchitecture) { expect_config_error(base("GPT2LMHeadModel"), "GPT2LMHeadModel"); }
TEST(ModelConfig, NotJson) { expect_config_error("{not json", "not a JSON object"); }
TEST(ModelConfig, BadValue) {
    expect_config_error(base("LlamaForCausalLM").replace(base("LlamaForCausalLM").find("64"), 2, "-5"), "hidden_size");
}
TEST(ModelConfig, HeadsNotDivisibleByKvHeads) {
    expect_config_error(
        base("LlamaForCausalLM")
            .replace(base("LlamaForCausalLM").find(R"("num_key_value_heads":2)"), 23, R"("num_key_value_heads":3)"),
        "num_key_value_heads");
}
TEST(ModelConfig, MissingFile) {
    try {
        ModelConfig::from_file("/nonexistent/config.json");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/config.json"), std::string::npos);
    }
}

// transformers' rules: Mistral windows every block (4096 when the key is absent, none when it is null),
// Qwen2 only with use_sliding_window and from max_window_layers on, layer_types per block when given, and a
// Llama config's sliding_window is ignored as transformers ignores it.
TEST(ModelConfig, SlidingWindowAsTransformersReadsIt) {
    const auto blocks = [](const ModelConfig& c) { return c.sliding_blocks; };
    auto m = ModelConfig::from_json_text(base("MistralForCausalLM"), "m");
    EXPECT_EQ(m.sliding_window, 4096);
    EXPECT_EQ(blocks(m), std::vector<bool>({true, true}));
    EXPECT_EQ(ModelConfig::from_json_text(base("MistralForCausalLM", R"(,"sliding_window":null)"), "m").sliding_window, 0);
    auto m32 = ModelConfig::from_json_text(base("MistralForCausalLM", R"(,"sliding_window":32)"), "m");
    EXPECT_EQ(m32.window_of(0), 32);
    EXPECT_EQ(m32.window_of(1), 32);
    EXPECT_EQ(ModelConfig::from_json_text(base("LlamaForCausalLM", R"(,"sliding_window":32)"), "l").sliding_window, 0);
    EXPECT_EQ(ModelConfig::from_json_text(base("Qwen2ForCausalLM", R"(,"sliding_window":32)"), "q").sliding_window, 0);
    auto q = ModelConfig::from_json_text(
        base("Qwen2ForCausalLM", R"(,"use_sliding_window":true,"sliding_window":32,"max_window_layers":1)"), "q");
    EXPECT_EQ(q.window_of(0), 0);
    EXPECT_EQ(q.window_of(1), 32);
    auto typed = ModelConfig::from_json_text(
        base("MistralForCausalLM", R"(,"sliding_window":32,"layer_types":["sliding_attention","full_attention"])"), "m");
    EXPECT_EQ(blocks(typed), std::vector<bool>({true, false}));
    // Written back as transformers reads it, new and old versions alike.
    for (const auto* c : {&m32, &q, &typed}) {
        const auto again = ModelConfig::from_json_text(c->to_json_text(), "again");
        EXPECT_EQ(again.sliding_window, c->sliding_window);
        EXPECT_EQ(again.sliding_blocks, c->sliding_blocks);
    }
    auto no_layer_types = nlohmann::json::parse(q.to_json_text());
    no_layer_types.erase("layer_types");
    EXPECT_EQ(ModelConfig::from_json_text(no_layer_types.dump(), "old").sliding_blocks, q.sliding_blocks);
    EXPECT_EQ(ModelConfig::from_json_text(
                  ModelConfig::from_json_text(base("MistralForCausalLM", R"(,"sliding_window":null)"), "m").to_json_text(), "m")
                  .sliding_window,
              0);
    expect_config_error(base("MistralForCausalLM", R"(,"sliding_window":0)"), "sliding_window");
    expect_config_error(base("MistralForCausalLM", R"(,"layer_types":["full_attention"])"), "layer_types");
    expect_config_error(base("MistralForCausalLM", R"(,"layer_types":["chunked_attention","full_attention"])"),
                        "chunked_attention");
    expect_config_error(base("LlamaForCausalLM", R"(,"mlp_bias":true)"), "mlp_bias");
}
