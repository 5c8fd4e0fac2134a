// The memory-bounded forward pass (issue 19) gives the numbers the resident one gave: streaming a model's
// pages out after each block, attention in chunks of query rows, 16-bit weights converted per use and
// quantized layers held as codes change where the bytes live, not the logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "analysis/text_data.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "model/safetensors_writer.h"
#include "model/synthetic.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/dequantized_layers.h"
#include "support/files.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

// The first n tokens of the held-out TinyStories text, as one window.
at::Tensor first_eval_tokens(const LlamaModel& m, int64_t n) {
    const auto tok = load_tokenizer(m.dir());
    auto ids = tokenize_text_file(*tok, test::eval_text(), true, n);
    return torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
}

}  // namespace

TEST(StreamedForward, ForgettingEachBlocksPagesKeepsTheLogitsBitForBit) {
    auto m = load_model(test::real_model_dir());
    EXPECT_FALSE(m->streaming()) << "a 656K model stays resident by default";
    const at::Tensor tokens = first_eval_tokens(*m, 256);
    const at::Tensor resident = m->forward(tokens);
    m->set_streaming(true);
    EXPECT_TRUE(torch::equal(m->forward(tokens), resident));
    EXPECT_TRUE(torch::equal(m->forward(tokens), resident)) << "a second pass maps the pages again";
}

TEST(StreamedForward, AttentionInChunksOfRowsMatchesOneChunk) {
    auto m = load_model(test::real_model_dir());
    for (const int64_t ctx : {64, 512, 2048}) {
        SCOPED_TRACE(ctx);
        const at::Tensor tokens = first_eval_tokens(*m, ctx);
        ASSERT_EQ(tokens.size(1), ctx);
        m->set_attention_budget(int64_t(256) << 20);  // one chunk at these sizes
        const at::Tensor whole = m->forward(tokens);
        // 8 heads x ctx keys x 4 bytes per row: 16 rows per chunk at ctx 2048, up to 64 at ctx 64.
        m->set_attention_budget(8 * ctx * 4 * 16);
        const at::Tensor chunked = m->forward(tokens);
        // Softmax sums over fewer (masked, exactly zero) terms per chunk and BLAS blocks the smaller products
        // differently: fp32 reassociation only, whose error scales with the largest logit (a few ulp of it).
        const double diff = (chunked - whole).abs().max().item<double>();
        EXPECT_LT(diff, 1e-5 * whole.abs().max().item<double>()) << "max |diff| " << diff;
    }
}

TEST(StreamedForward, Bf16WeightsStayAsStoredAndConvertExactlyOnUse) {
    test::ScratchDir dir;
    SynthOptions o;
    o.shape = "tinystories-656k";
    o.dtype = DType::BF16;
    o.seed = 3;
    const std::string bf16 = dir.file("bf16"), f32 = dir.file("f32");
    write_synthetic_checkpoint(bf16, o);
    auto a = load_model(bf16);
    // An F32 copy of the same values, written independently of the model.
    std::filesystem::create_directories(f32);
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
        std::filesystem::copy_file(bf16 + "/" + f, f32 + "/" + f);
    std::vector<at::Tensor> keep;
    SafetensorsWriter w;
    for (const auto& name : a->checkpoint().names()) {
        if (a->checkpoint().info(name).name != name) continue;  // aliases resolve to the stored tensor
        keep.push_back(a->checkpoint().tensor_f32(name).contiguous());
        w.add(name, DType::F32, keep.back().sizes().vec(), keep.back().data_ptr(), keep.back().nbytes());
    }
    w.write(f32 + "/model.safetensors");
    auto b = load_model(f32);

    const std::string q = "model.layers.1.self_attn.q_proj.weight";
    EXPECT_EQ(a->checkpoint().tensor(q).scalar_type(), at::kBFloat16) << "the checkpoint's view is not converted";
    const std::size_t layer = *a->layers().index_of(q);
    EXPECT_EQ(a->original_weight(layer).scalar_type(), at::kFloat);
    EXPECT_TRUE(torch::equal(a->original_weight(layer), b->original_weight(layer)));
    const at::Tensor tokens = torch::randint(0, a->config().vocab_size, {2, 48}, at::kLong);
    EXPECT_TRUE(torch::equal(a->forward(tokens), b->forward(tokens)));
}

TEST(StreamedForward, QuantizedLayersAreHeldAsCodesAndComputeAsTheirDequantization) {
    auto m = load_model(test::real_model_dir());
    const std::size_t layer = *m->layers().index_of("model.layers.0.mlp.down_proj");
    const auto codec = make_codec("rtn:b=3,g=64");
    const QuantizedTensor q = codec->quantize(m->original_weight(layer), {});
    const at::Tensor wq = codec->dequantize(q);
    const at::Tensor tokens = first_eval_tokens(*m, 128);

    m->replace_weight(layer, wq);  // a dense replacement, for reference
    const at::Tensor dense = m->forward(tokens);
    replace_with_quantized(*m, layer, q);
    EXPECT_TRUE(m->is_replaced(layer));
    EXPECT_TRUE(torch::equal(m->weight(layer), wq));
    EXPECT_TRUE(torch::equal(m->forward(tokens), dense));
    m->restore_weight(layer);
    EXPECT_FALSE(m->is_replaced(layer));
    EXPECT_TRUE(torch::equal(m->weight(layer), m->original_weight(layer)));
}

namespace {

// The real model's files with config.json saying MistralForCausalLM with the given sliding window.
std::unique_ptr<LlamaModel> windowed_model(const test::ScratchDir& dir, const std::string& window) {
    namespace fs = std::filesystem;
    for (const auto& e : fs::directory_iterator(test::real_model_dir()))
        if (e.path().filename() != "config.json") fs::copy_file(e.path(), dir.path() / e.path().filename());
    auto config = nlohmann::json::parse(test::read_required(test::real_model_dir() + "/config.json"));
    config["architectures"] = {"MistralForCausalLM"};
    config["sliding_window"] = nlohmann::json::parse(window);
    test::write_bytes((dir.path() / "config.json").string(), config.dump());
    return load_model(dir.path().string());
}

// The last position's logits of tokens; `from` of them replaced by other tokens at the start.
at::Tensor last_logits(const LlamaModel& m, at::Tensor tokens, int64_t changed) {
    tokens = tokens.clone();
    if (changed > 0) tokens.narrow(1, 0, changed).copy_((tokens.narrow(1, 0, changed) * 7 + 3) % 2000);
    const at::Tensor l = m.forward(tokens);
    return l.select(1, l.size(1) - 1);
}

}  // namespace

// Sliding-window attention (Mistral): a window as long as the text changes nothing, bit for bit; with a
// window W every block lets a position see W - 1 earlier ones, so through the real model's 2 blocks the last
// position's logits depend on exactly its 2 (W - 1) + 1 last tokens.
TEST(StreamedForward, SlidingWindowAttentionSeesExactlyTheWindow) {
    auto plain = load_model(test::real_model_dir());
    const at::Tensor tokens = first_eval_tokens(*plain, 64);
    {
        test::ScratchDir dir;
        auto same = windowed_model(dir, "64");
        EXPECT_TRUE(torch::equal(same->forward(tokens), plain->forward(tokens)));
    }
    for (const int64_t w : {1, 4, 16}) {
        SCOPED_TRACE("window " + std::to_string(w));
        test::ScratchDir dir;
        auto m = windowed_model(dir, std::to_string(w));
        const int64_t seen = 2 * (w - 1) + 1, before = 64 - seen;
        const at::Tensor base = last_logits(*m, tokens, 0);
        EXPECT_TRUE(torch::allclose(last_logits(*m, tokens, before), base, 1e-4, 1e-5));  // outside: no effect
        EXPECT_GT((last_logits(*m, tokens, before + 1) - base).abs().max().item<double>(), 1e-3);  // inside
        EXPECT_GT((last_logits(*plain, tokens, before) - last_logits(*plain, tokens, 0)).abs().max().item<double>(), 1e-3);
    }
}
