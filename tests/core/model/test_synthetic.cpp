// Synthetic checkpoints: loadable, trained-like statistics, deterministic by seed, and identical whether
// written whole or as shards; the real model gives the same logits when re-saved as shards.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "model/safetensors_writer.h"
#include "model/llama_model.h"
#include "model/synthetic.h"
#include "model/tokenizer.h"
#include "support/test_paths.h"

using namespace quench;
namespace fs = std::filesystem;

namespace {
at::Tensor sample_tokens(int64_t vocab, int64_t n) {
    return torch::randint(vocab, {2, n}, at::make_generator<at::CPUGeneratorImpl>(1)).to(torch::kLong);
}
}  // namespace

TEST(Synthetic, ShapesMatchTheRealModelsConfig) {
    auto c = synthetic_config("smollm2-135m");
    EXPECT_EQ(c.hidden_size, 576);
    EXPECT_EQ(c.num_hidden_layers, 30);
    EXPECT_EQ(c.num_key_value_heads, 3);
    EXPECT_EQ(c.head_dim, 64);
    auto l = synthetic_config("llama2-7b");
    EXPECT_EQ(l.intermediate_size, 11008);
    EXPECT_FALSE(l.tie_word_embeddings);
    // Published configs (config.json of each model): GQA 32/8 and the 128256 vocabulary of Llama 3.
    auto l3 = synthetic_config("llama3-8b");
    EXPECT_EQ(l3.intermediate_size, 14336);
    EXPECT_EQ(l3.num_key_value_heads, 8);
    EXPECT_EQ(l3.vocab_size, 128256);
    auto l32 = synthetic_config("llama3.2-1b");
    EXPECT_EQ(l32.hidden_size, 2048);
    EXPECT_EQ(l32.intermediate_size, 8192);
    EXPECT_EQ(l32.num_hidden_layers, 16);
    EXPECT_TRUE(l32.tie_word_embeddings);
    auto tl = synthetic_config("tinyllama-1.1b");
    EXPECT_EQ(tl.intermediate_size, 5632);
    EXPECT_EQ(tl.num_key_value_heads, 4);
    EXPECT_EQ(tl.num_hidden_layers, 22);
    auto g2 = synthetic_config("gemma2-2b");  // Gemma-2-2B's widths: 2304 and 9216, neither a multiple of 2^10
    EXPECT_EQ(g2.hidden_size, 2304);
    EXPECT_EQ(g2.intermediate_size, 9216);
    EXPECT_EQ(g2.vocab_size, 256000);
    EXPECT_EQ(g2.num_hidden_layers, 26);
    EXPECT_THROW(synthetic_config("gpt-5"), Error);
}

TEST(Synthetic, WholeAndShardedCheckpointsGiveTheSameModel) {
    test::ScratchDir dir;
    SynthOptions o;
    o.shape = "smollm2-135m";
    o.layers = 2;
    o.seed = 11;
    write_synthetic_checkpoint(dir.file("whole"), o);
    o.shard_bytes = 8 << 20;
    write_synthetic_checkpoint(dir.file("sharded"), o);
    EXPECT_TRUE(fs::exists(dir.file("sharded/model.safetensors.index.json")));
    EXPECT_GT(std::distance(fs::directory_iterator(dir.file("sharded")), fs::directory_iterator()), 4);
    auto whole = load_model(dir.file("whole"));
    auto sharded = load_model(dir.file("sharded"));
    EXPECT_EQ(whole->num_params(), sharded->num_params());
    auto t = sample_tokens(whole->config().vocab_size, 16);
    EXPECT_TRUE(torch::equal(whole->forward(t), sharded->forward(t)));

    // Trained-like: heavy tails (kurtosis well above a Gaussian's 3) and a few strong input channels.
    auto w = whole->weight(*whole->layers().index_of("model.layers.0.mlp.up_proj"));
    auto z = (w - w.mean()) / w.std();
    EXPECT_GT(z.pow(4).mean().item<double>(), 4.0);
    auto col = w.abs().mean(0);
    EXPECT_GT((col.max() / col.median()).item<double>(), 3.0);
    // The tokenizer it writes is a working byte-level BPE.
    auto tok = load_tokenizer(dir.file("whole"));
    EXPECT_EQ(tok->decode(tok->encode("héllo wörld", false)), "héllo wörld");
}

TEST(Synthetic, SameSeedSameWeightsOtherSeedOtherWeights) {
    test::ScratchDir dir;
    SynthOptions o;
    o.shape = "tinystories-656k";
    write_synthetic_checkpoint(dir.file("a"), o);
    write_synthetic_checkpoint(dir.file("b"), o);
    o.seed = 1;
    write_synthetic_checkpoint(dir.file("c"), o);
    auto a = load_model(dir.file("a")), b = load_model(dir.file("b")), c = load_model(dir.file("c"));
    EXPECT_TRUE(torch::equal(a->weight(0), b->weight(0)));
    EXPECT_FALSE(torch::equal(a->weight(0), c->weight(0)));
}

TEST(Synthetic, Bf16CheckpointLoadsAsFp32) {
    test::ScratchDir dir;
    SynthOptions o;
    o.shape = "qwen2.5-0.5b";
    o.layers = 1;
    o.dtype = DType::BF16;
    write_synthetic_checkpoint(dir.file("q"), o);
    auto m = load_model(dir.file("q"));
    EXPECT_TRUE(m->config().attention_bias);
    EXPECT_EQ(m->weight(0).scalar_type(), torch::kFloat32);
    auto logits = m->forward(sample_tokens(m->config().vocab_size, 8));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

TEST(Synthetic, RealModelReSavedAsShardsGivesIdenticalLogits) {
    test::ScratchDir dir;
    auto real = load_model(test::real_model_dir());
    const auto& ck = real->checkpoint();
    // Write the stored tensors (not aliases) into three shards plus an index, and copy the side files.
    std::vector<std::string> names;
    for (const auto& n : ck.names())
        if (n != "model.embed_tokens.weight") names.push_back(n);
    nlohmann::json map = nlohmann::json::object();
    std::vector<at::Tensor> keep;
    for (int s = 0; s < 3; ++s) {
        SafetensorsWriter w;
        const std::string file = "model-0000" + std::to_string(s + 1) + "-of-00003.safetensors";
        for (std::size_t i = s; i < names.size(); i += 3) {
            keep.push_back(ck.tensor_f32(names[i]).contiguous());
            w.add(names[i], DType::F32, keep.back().sizes().vec(), keep.back().data_ptr(), keep.back().numel() * 4);
            map[names[i]] = file;
        }
        w.write(dir.file(file));
    }
    write_file_atomic(dir.file("model.safetensors.index.json"), nlohmann::json{{"weight_map", map}}.dump());
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
        fs::copy_file(test::real_model_dir() + "/" + f, dir.file(f));
    auto sharded = load_model(dir.path().string());
    auto t = sample_tokens(2048, 32);
    EXPECT_TRUE(torch::equal(real->forward(t), sharded->forward(t)));
}
