// The forward pass on the real pretrained model against golden numbers from an independent numpy
// implementation (../shared/data/SOURCES.md): last-position logits, argmax, greedy continuation, and the
// evaluator's perplexity against a sum computed here from the logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

const std::vector<int32_t> kGirlIds = {1, 80, 147, 201, 282, 215, 286, 1890, 10};

const LlamaModel& real_model() {
    static auto m = load_model(test::real_model_dir());
    return *m;
}

}  // namespace

TEST(LlamaModel, RealModelConfigAndRegistry) {
    const auto& m = real_model();
    EXPECT_EQ(m.config().hidden_size, 128);
    EXPECT_EQ(m.config().num_key_value_heads, 4);
    EXPECT_EQ(m.config().head_dim, 16);
    EXPECT_TRUE(m.config().tie_word_embeddings);
    EXPECT_EQ(m.num_params(), 656000);  // the model's advertised size, embeddings counted once
    ASSERT_EQ(m.layers().size(), 2u * 7u + 1u);
    const auto& k = m.layers().at(*m.layers().index_of("model.layers.1.self_attn.k_proj"));
    EXPECT_EQ(k.block, 1);
    EXPECT_EQ(k.kind, LayerKind::K);
    EXPECT_EQ(k.out_features, 64);  // 4 KV heads x 16
    EXPECT_EQ(k.in_features, 128);
    EXPECT_EQ(m.layers().select_glob("model.layers.*.mlp.*").size(), 6u);
    EXPECT_EQ(m.layers().select_regex(R"(layers\.0\..*(q|k)_proj)").size(), 2u);
    EXPECT_THROW(m.layers().select_glob("model.layers.9.*"), Error);
    EXPECT_THROW(m.layers().select_regex("(unclosed"), Error);
}

TEST(LlamaModel, GoldenLastPositionLogits) {
    const auto& m = real_model();
    auto tokens = torch::tensor(std::vector<int64_t>(kGirlIds.begin(), kGirlIds.end())).unsqueeze(0);
    auto logits = m.forward(tokens);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{1, 9, 2048}));
    auto last = logits[0][8];
    const float golden[] = {-4.27742f, -4.21018f, -3.67551f, 3.82571f, 5.09805f, 4.50768f};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(last[i].item<float>(), golden[i], 1e-4) << "logit " << i;
    EXPECT_EQ(last.argmax().item<int64_t>(), 208);
}

TEST(LlamaModel, BatchedWindowsEqualSingleWindows) {
    const auto& m = real_model();
    auto a = torch::tensor(std::vector<int64_t>(kGirlIds.begin(), kGirlIds.end()));
    auto b = a.flip(0);
    auto batched = m.forward(torch::stack({a, b}));
    EXPECT_TRUE(torch::allclose(batched[0], m.forward(a.unsqueeze(0))[0], 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(batched[1], m.forward(b.unsqueeze(0))[0], 1e-5, 1e-5));
}

TEST(LlamaModel, GreedyContinuationMatchesReference) {
    const auto& m = real_model();
    auto tok = load_tokenizer(test::real_model_dir());
    const auto prompt = tok->encode("Once upon a time, there was a little", true);
    const auto out = m.generate_greedy(prompt, 24);
    const std::string text = tok->decode(out);
    // SOURCES.md: ". The large liked to go fast and play with his friends. One day, the large met a little girl named Lily."
    EXPECT_EQ(text.rfind(". The large liked to go fast and play with his friends. One day, the large", 0), 0u) << text;
}

TEST(LlamaModel, ReplaceAndRestoreWeight) {
    auto m = load_model(test::real_model_dir());
    const std::size_t l = *m->layers().index_of("model.layers.0.mlp.down_proj");
    auto tokens = torch::tensor(std::vector<int64_t>(kGirlIds.begin(), kGirlIds.end())).unsqueeze(0);
    auto before = m->forward(tokens);
    m->replace_weight(l, torch::zeros_like(m->weight(l)));
    EXPECT_TRUE(m->is_replaced(l));
    auto changed = m->forward(tokens);
    EXPECT_FALSE(torch::allclose(before, changed));
    // The original weight set is still reachable without restoring.
    auto orig_hidden = m->forward_hidden(tokens, nullptr, LlamaModel::Weights::Original);
    EXPECT_TRUE(torch::equal(m->logits(orig_hidden, LlamaModel::Weights::Original), before));
    EXPECT_THROW(m->replace_weight(l, torch::zeros({3, 3})), Error);
    m->restore_weight(l);
    EXPECT_FALSE(m->is_replaced(l));
    EXPECT_TRUE(torch::equal(m->forward(tokens), before));
}

TEST(LlamaModel, PerplexityEqualsAnIndependentSumOverWindows) {
    const auto& m = real_model();
    auto tok = load_tokenizer(test::real_model_dir());
    auto tokens = tokenize_text_file(*tok, test::eval_text(), true);
    EvalOptions o;
    o.ctx = 512;
    auto r = evaluate_perplexity({&m}, tokens, o, tok->bos_id());
    EXPECT_EQ(r.protocol.ctx, 512);
    EXPECT_EQ(r.protocol.text_tokens, static_cast<int64_t>(tokens.size()));
    EXPECT_EQ(r.protocol.scored_tokens, static_cast<int64_t>(tokens.size()) - r.protocol.windows);

    // The same protocol summed here without the evaluator (its batching, position chunks and windows plan):
    // non-overlapping windows of 512 tokens, the last one shorter, every token after a window's first scored
    // by the full-vocabulary log-softmax of the model's logits, accumulated in double.
    double nll = 0;
    int64_t scored = 0;
    for (std::size_t begin = 0; begin < tokens.size(); begin += 512) {
        const std::size_t end = std::min(tokens.size(), begin + 512);
        if (end - begin < 2) continue;
        const auto window =
            torch::tensor(std::vector<int64_t>(tokens.begin() + begin, tokens.begin() + end)).unsqueeze(0);
        const auto logp = torch::log_softmax(m.forward(window)[0].to(torch::kDouble), -1);
        const auto n = static_cast<int64_t>(end - begin) - 1;
        nll -= logp.narrow(0, 0, n).gather(1, window[0].narrow(0, 1, n).unsqueeze(1)).sum().item<double>();
        scored += n;
    }
    EXPECT_EQ(scored, r.protocol.scored_tokens);
    // fp32 logits, reduced in another order: a relative 1e-5 on the mean NLL is far below any model change
    // (one quantized layer moves it by 1e-3 or more).
    EXPECT_NEAR(r.nll_mean, nll / static_cast<double>(scored), 1e-5 * r.nll_mean);
}

namespace {
// A copy of the real model directory with config.json edited.
std::string model_with_config(const test::ScratchDir& dir, const std::string& from, const std::string& to) {
    std::ifstream in(test::real_model_dir() + "/config.json");
    std::string cfg((std::istreambuf_iterator<char>(in)), {});
    const auto pos = cfg.find(from);
    if (pos == std::string::npos) throw std::runtime_error("config text not found: " + from);
    cfg.replace(pos, from.size(), to);
    std::ofstream(dir.file("config.json")) << cfg;
    for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
        std::filesystem::copy_file(test::real_model_dir() + "/" + f, dir.file(f));
    return dir.path().string();
}

std::string load_error(const std::string& dir) {
    try {
        load_model(dir);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST(LlamaModel, ConfigDisagreeingWithTensorShapesNamesTensorAndShapes) {
    test::ScratchDir dir;
    const auto err = load_error(model_with_config(dir, "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 8"));
    EXPECT_NE(err.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << err;
    EXPECT_NE(err.find("[64, 128]"), std::string::npos) << err;
    EXPECT_NE(err.find("[128, 128]"), std::string::npos) << err;
}

TEST(LlamaModel, MissingTensorIsNamed) {
    test::ScratchDir dir;
    const auto err = load_error(model_with_config(dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"));
    EXPECT_NE(err.find("model.layers.2.input_layernorm.weight"), std::string::npos) << err;
}

TEST(LlamaModel, UnsupportedArchitectureNamesConfigFile) {
    test::ScratchDir dir;
    const auto err = load_error(model_with_config(dir, "LlamaForCausalLM", "GPTNeoXForCausalLM"));
    EXPECT_NE(err.find("config.json"), std::string::npos) << err;
    EXPECT_NE(err.find("GPTNeoXForCausalLM"), std::string::npos) << err;
}
