// GGUF: the container byte for byte, reader errors on bad files, the tokenizer keys against the source
// tokenizer.json files, the q/k RoPE permutation against HF's RoPE, and full exports of the real
// tinystories-656k model (F32 exactly, Q8_0 within the block bound) and of a small K-quant checkpoint.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <functional>
#include <map>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/progress.h"
#include "io/export_plan.h"
#include "io/gguf_export.h"
#include "io/gguf_reader.h"
#include "io/gguf_tokenizer.h"
#include "io/gguf_writer.h"
#include "io/model_loading.h"
#include "model/checkpoint.h"
#include "model/dtype.h"
#include "model/llama_model.h"
#include "model/rope.h"
#include "model/safetensors_writer.h"
#include "model/synthetic.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"
#include "support/tiny_model.h"

using namespace quench;
using quench::test::entries;
using quench::test::error_of;
using quench::test::read_bytes;
using quench::test::ScratchDir;
using quench::test::write_bytes;
namespace fs = std::filesystem;

namespace {

GgufWriter::Producer bytes_of(std::vector<uint8_t> b) {
    return [b = std::move(b)](const GgufWriter::ChunkSink& sink) { sink(b.data(), b.size()); };
}

GgufWriter::Producer floats_of(GgmlType t, std::vector<float> x, int64_t row) {
    return [=](const GgufWriter::ChunkSink& sink) {
        std::vector<uint8_t> b(ggml_row_bytes(t, row) * (x.size() / std::size_t(row)));
        for (std::size_t r = 0; r < x.size() / std::size_t(row); ++r)
            ggml_quantize_row(t, x.data() + r * row, row, b.data() + r * ggml_row_bytes(t, row));
        sink(b.data(), b.size());
    };
}

// The smallest useful file: one string key, one F32 tensor "t" = {1, -2}.
void write_tiny(const std::string& path) {
    GgufWriter w;
    w.set("general.architecture", GgufValue::string("llama"));
    w.add_tensor("t", {2}, GgmlType::F32, bytes_of({0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0}));
    w.write(path);
}

// Field offsets of write_tiny's file, from the layout worked out in TinyFileBytesByHand.
constexpr std::size_t kKeyLenAt = 24, kKvTypeAt = 52, kNDimsAt = 78, kTensorTypeAt = 90, kOffsetAt = 94;

void patch_u32(std::string& b, std::size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = char(uint8_t(v >> (8 * i)));
}
void patch_u64(std::string& b, std::size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = char(uint8_t(v >> (8 * i)));
}

std::string reader_error(const std::string& path) {
    return error_of([&] { GgufReader r(path); });
}

at::Tensor from_vector(const std::vector<float>& v, std::vector<int64_t> shape) {
    return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

// The HF-layout weight back from a GGUF tensor: rows un-permuted for q and k.
at::Tensor gguf_weight_as_hf(const GgufReader& r, const std::string& gguf_name, int64_t rope_heads) {
    const GgufTensorInfo& t = r.tensor(gguf_name);
    at::Tensor w = from_vector(r.dequantize(gguf_name), t.ne.size() == 1 ? std::vector<int64_t>{t.ne[0]}
                                                                          : std::vector<int64_t>{t.ne[1], t.ne[0]});
    if (rope_heads == 0) return w;
    const auto perm = gguf_rope_permutation(t.ne[1], rope_heads);
    at::Tensor hf = torch::empty_like(w);
    for (int64_t g = 0; g < t.ne[1]; ++g) hf[perm[std::size_t(g)]] = w[g];
    return hf;
}

int64_t rope_heads_for(const std::string& gguf_name, const ModelConfig& c) {
    if (gguf_name.find("attn_q.weight") != std::string::npos) return c.num_attention_heads;
    if (gguf_name.find("attn_k.weight") != std::string::npos) return c.num_key_value_heads;
    return 0;
}

// A 1-block Llama checkpoint whose matrices all have rows of 256 or 512 (K-quant friendly), with the real
// tinystories tokenizer files copied next to it (2048 tokens).
std::string write_k_checkpoint(const ScratchDir& dir) {
    const std::string d = dir.file("k-model");
    fs::create_directory(d);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
        fs::copy_file(quench::test::real_model_dir() + "/" + f, d + "/" + f);
    ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.model_type = "llama";
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.vocab_size = 2048;
    c.max_position_embeddings = 256;
    c.rms_norm_eps = 1e-5;
    write_bytes(d + "/config.json", c.to_json_text());
    torch::manual_seed(11);
    std::vector<std::pair<std::string, at::Tensor>> ts = {
        {"model.embed_tokens.weight", torch::randn({2048, 256}) * 0.05},
        {"model.layers.0.input_layernorm.weight", 1 + 0.1 * torch::randn({256})},
        {"model.layers.0.self_attn.q_proj.weight", torch::randn({256, 256}) * 0.05},
        {"model.layers.0.self_attn.k_proj.weight", torch::randn({128, 256}) * 0.05},
        {"model.layers.0.self_attn.v_proj.weight", torch::randn({128, 256}) * 0.05},
        {"model.layers.0.self_attn.o_proj.weight", torch::randn({256, 256}) * 0.05},
        {"model.layers.0.post_attention_layernorm.weight", 1 + 0.1 * torch::randn({256})},
        {"model.layers.0.mlp.gate_proj.weight", torch::randn({512, 256}) * 0.05},
        {"model.layers.0.mlp.up_proj.weight", torch::randn({512, 256}) * 0.05},
        {"model.layers.0.mlp.down_proj.weight", torch::randn({256, 512}) * 0.05},
        {"model.norm.weight", 1 + 0.1 * torch::randn({256})},
        {"lm_head.weight", torch::randn({2048, 256}) * 0.05},
    };
    SafetensorsWriter sw;
    for (auto& [name, t] : ts) {
        t = t.contiguous();
        sw.add(name, DType::F32, t.sizes().vec(), t.data_ptr<float>(), std::size_t(t.numel()) * 4);
    }
    sw.write(d + "/model.safetensors");
    return d;
}

// Cancels the job once it has reported progress at or past `at`.
class CancelAtFraction : public ProgressSink {
public:
    explicit CancelAtFraction(double at) : at_(at) {}
    void report(double fraction, const std::string&) override {
        if (fraction >= at_) hit_ = true;
    }
    bool cancelled() const override { return hit_; }

private:
    double at_;
    bool hit_ = false;
};

}  // namespace

// ---- container -------------------------------------------------------------------------------------------

TEST(GgufWriter, TinyFileBytesByHand) {
    ScratchDir dir;
    write_tiny(dir.file("tiny.gguf"));
    std::string want = "GGUF";
    auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) want += char(uint8_t(v >> (8 * i))); };
    auto u64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) want += char(uint8_t(v >> (8 * i))); };
    u32(3);                                // version
    u64(1);                                // tensor count
    u64(1);                                // kv count
    u64(20), want += "general.architecture";  // key: bytes 24..51
    u32(8);                                // STRING, at 52
    u64(5), want += "llama";               // value: 56..68
    u64(1), want += "t";                   // tensor name: 69..77
    u32(1);                                // n_dims, at 78
    u64(2);                                // ne[0], at 82
    u32(0);                                // F32, at 90
    u64(0);                                // offset, at 94; infos end at 102
    want.append(128 - 102, '\0');          // pad to the 32-byte alignment
    want += std::string("\x00\x00\x80\x3F\x00\x00\x00\xC0", 8);  // 1.0f, -2.0f
    want.append(24, '\0');                 // the tensor padded to 32 bytes
    EXPECT_EQ(read_bytes(dir.file("tiny.gguf")), want);

    GgufReader r(dir.file("tiny.gguf"));
    EXPECT_EQ(r.version(), 3u);
    EXPECT_EQ(r.data_offset(), 128u);
    EXPECT_EQ(r.get_string("general.architecture"), "llama");
    ASSERT_EQ(r.tensors().size(), 1u);
    EXPECT_EQ(r.tensor("t").ne, (std::vector<int64_t>{2}));
    EXPECT_EQ(r.dequantize("t"), (std::vector<float>{1.0f, -2.0f}));
}

TEST(GgufWriter, EveryValueTypeRoundTripsInOrder) {
    ScratchDir dir;
    GgufWriter w;
    w.set("u8", GgufValue::u8(250));
    w.set("i8", GgufValue::i8(-100));
    w.set("u16", GgufValue::u16(65000));
    w.set("i16", GgufValue::i16(-32000));
    w.set("u32", GgufValue::u32(4000000000u));
    w.set("i32", GgufValue::i32(-2000000000));
    w.set("f32", GgufValue::f32(0.1f));
    w.set("bool", GgufValue::boolean(true));
    w.set("str", GgufValue::string("h\xC3\xA9llo"));
    w.set("u64", GgufValue::u64(18000000000000000000ull));
    w.set("i64", GgufValue::i64(-9000000000000000000ll));
    w.set("f64", GgufValue::f64(1e-300));
    w.set("strs", GgufValue::string_array({"a", "", "\xE2\x96\x81the"}));
    w.set("f32s", GgufValue::f32_array({1.5f, -0.25f}));
    w.set("i32s", GgufValue::i32_array({-1, 7}));
    w.set("u8s", GgufValue::scalar_array(GgufType::U8, 3, {1, 2, 255}));
    w.set("u8", GgufValue::u8(251));  // replacing keeps the first position
    w.write(dir.file("kv.gguf"));

    GgufReader r(dir.file("kv.gguf"));
    const std::vector<std::string> order = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str",
                                            "u64", "i64", "f64", "strs", "f32s", "i32s", "u8s"};
    ASSERT_EQ(r.metadata().size(), order.size());
    for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(r.metadata()[i].first, order[i]);
    EXPECT_EQ(r.get("u8").type(), GgufType::U8);
    EXPECT_EQ(r.get_uint("u8"), 251u);
    EXPECT_EQ(r.get_int("i8"), -100);
    EXPECT_EQ(r.get_uint("u16"), 65000u);
    EXPECT_EQ(r.get_int("i16"), -32000);
    EXPECT_EQ(r.get_uint("u32"), 4000000000u);
    EXPECT_EQ(r.get_int("i32"), -2000000000);
    EXPECT_EQ(r.get_float("f32"), double(0.1f));
    EXPECT_TRUE(r.get_bool("bool"));
    EXPECT_EQ(r.get_string("str"), "h\xC3\xA9llo");
    EXPECT_EQ(r.get_uint("u64"), 18000000000000000000ull);
    EXPECT_EQ(r.get_int("i64"), -9000000000000000000ll);
    EXPECT_EQ(r.get_float("f64"), 1e-300);
    EXPECT_EQ(r.get("strs").strings(), (std::vector<std::string>{"a", "", "\xE2\x96\x81the"}));
    EXPECT_EQ(r.get("f32s").array_type(), GgufType::F32);
    EXPECT_EQ(r.get("f32s").number_at(1), -0.25);
    EXPECT_EQ(r.get("i32s").number_at(0), -1.0);
    EXPECT_EQ(r.get("u8s").array_size(), 3u);
    EXPECT_EQ(r.get("u8s").number_at(2), 255.0);
}

TEST(GgufWriter, AlignmentAndTensorLayoutRoundTrip) {
    ScratchDir dir;
    std::vector<float> a(3 * 256), b(2 * 3 * 32);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(float(i));
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = float(i) - 90;
    GgufWriter w(64);
    w.add_tensor("a.q4k", {256, 3}, GgmlType::Q4_K, floats_of(GgmlType::Q4_K, a, 256));
    w.add_tensor("b.3d", {32, 3, 2}, GgmlType::F16, floats_of(GgmlType::F16, b, 32));
    const float c = 127.0f / 256.0f;  // 127 steps of 2^-8: exact in Q8_0
    w.add_tensor("c.small", {32}, GgmlType::Q8_0, floats_of(GgmlType::Q8_0, std::vector<float>(32, c), 32));
    EXPECT_EQ(w.data_bytes(), 448u + 384u + 64u);  // 3*144 = 432 -> 448, 192*2 = 384, 34 -> 64
    w.write(dir.file("al.gguf"));

    GgufReader r(dir.file("al.gguf"));
    EXPECT_EQ(r.alignment(), 64u);
    EXPECT_EQ(r.get_uint("general.alignment"), 64u);
    EXPECT_EQ(r.data_offset() % 64, 0u);
    ASSERT_EQ(r.tensors().size(), 3u);
    for (const auto& t : r.tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
    EXPECT_EQ(r.tensor("a.q4k").type, GgmlType::Q4_K);
    EXPECT_EQ(r.tensor("a.q4k").rows(), 3);
    EXPECT_EQ(r.tensor("b.3d").ne, (std::vector<int64_t>{32, 3, 2}));
    EXPECT_EQ(r.dequantize("b.3d"), b);  // integers are exact in fp16
    const auto qa = r.dequantize("a.q4k");
    double err = 0;
    for (std::size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(qa[i] - a[i])));
    EXPECT_LT(err, 0.1);  // Q4_K on [-1, 1]: a step is at most 2/15
    EXPECT_EQ(r.dequantize("c.small"), std::vector<float>(32, c));
    EXPECT_EQ(fs::file_size(dir.file("al.gguf")), r.data_offset() + w.data_bytes());
}

TEST(GgufWriter, RefusesBadTensorsNamingThem) {
    GgufWriter w;
    auto none = bytes_of({});
    EXPECT_NE(error_of([&] { w.add_tensor("w", {100, 2}, GgmlType::Q4_K, none); }).find("tensor 'w'"), std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor("w", {100, 2}, GgmlType::Q4_K, none); }).find("256"), std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor(std::string(64, 'x'), {4}, GgmlType::F32, none); }).find("name"),
              std::string::npos);
    EXPECT_NE(error_of([&] { w.add_tensor("five", {1, 1, 1, 1, 1}, GgmlType::F32, none); }).find("dims"),
              std::string::npos);
    w.add_tensor("once", {4}, GgmlType::F32, none);
    EXPECT_NE(error_of([&] { w.add_tensor("once", {4}, GgmlType::F32, none); }).find("twice"), std::string::npos);
    EXPECT_NE(error_of([] { GgufWriter bad(48); }).find("power of two"), std::string::npos);
}

TEST(GgufWriter, ShortProducerFailsNamingTensorAndLeavesNoFile) {
    ScratchDir dir;
    const std::string path = dir.file("short.gguf");
    GgufWriter w;
    w.add_tensor("short.weight", {8}, GgmlType::F32, bytes_of(std::vector<uint8_t>(16, 0)));
    const std::string msg = error_of([&] { w.write(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("short.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("16 of 32"), std::string::npos) << msg;
    EXPECT_TRUE(entries(dir.path()).empty());
}

// ---- reader errors ----------------------------------------------------------------------------------------

TEST(GgufReader, TruncatedFilesNameFileAndField) {
    ScratchDir dir;
    write_tiny(dir.file("tiny.gguf"));
    const std::string full = read_bytes(dir.file("tiny.gguf"));
    const std::pair<std::size_t, const char*> cuts[] = {
        {0, "magic"}, {6, "version"}, {20, "kv count"}, {60, "general.architecture"},
        {85, "tensor 't'"}, {130, "tensor 't'"},
    };
    for (const auto& [n, field] : cuts) {
        const std::string path = dir.file("cut" + std::to_string(n) + ".gguf");
        write_bytes(path, full.substr(0, n));
        const std::string msg = reader_error(path);
        EXPECT_NE(msg.find(path), std::string::npos) << n << ": " << msg;
        EXPECT_NE(msg.find(field), std::string::npos) << n << ": " << msg;
    }
    // Cut inside the data: the header is whole, the tensor's bytes are not.
    EXPECT_NE(reader_error(dir.file("cut130.gguf")).find("runs past the end"), std::string::npos);
}

TEST(GgufReader, BadMagicVersionTypesAndOffsets) {
    ScratchDir dir;
    write_tiny(dir.file("tiny.gguf"));
    const std::string good = read_bytes(dir.file("tiny.gguf"));
    auto check = [&](const std::string& name, const std::function<void(std::string&)>& patch,
                     const std::vector<std::string>& words) {
        std::string b = good;
        patch(b);
        const std::string path = dir.file(name);
        write_bytes(path, b);
        const std::string msg = reader_error(path);
        EXPECT_NE(msg.find(path), std::string::npos) << name << ": " << msg;
        for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << name << ": " << msg;
    };
    check("magic.gguf", [](std::string& b) { b[3] = 'X'; }, {"magic", "GGUX"});
    check("v1.gguf", [](std::string& b) { patch_u32(b, 4, 1); }, {"version", "1"});
    check("v4.gguf", [](std::string& b) { patch_u32(b, 4, 4); }, {"version", "4"});
    check("kvtype.gguf", [](std::string& b) { patch_u32(b, kKvTypeAt, 13); },
          {"general.architecture", "unknown value type 13"});
    check("ggmltype.gguf", [](std::string& b) { patch_u32(b, kTensorTypeAt, 99); }, {"tensor 't'", "99"});
    check("q4_2.gguf", [](std::string& b) { patch_u32(b, kTensorTypeAt, 4); }, {"tensor 't'", "type 4"});
    check("past.gguf", [](std::string& b) { patch_u64(b, kOffsetAt, 32); }, {"tensor 't'", "runs past the end"});
    check("huge.gguf", [](std::string& b) { patch_u64(b, kOffsetAt, ~uint64_t(0) - 31); },
          {"tensor 't'", "runs past the end"});
    check("misaligned.gguf", [](std::string& b) { patch_u64(b, kOffsetAt, 4); }, {"tensor 't'", "alignment"});
    check("ndims.gguf", [](std::string& b) { patch_u32(b, kNDimsAt, 5); }, {"tensor 't'", "n_dims 5"});
    check("keylen.gguf", [](std::string& b) { patch_u64(b, kKeyLenAt, uint64_t(1) << 40); },
          {"metadata key 0", "truncated"});
    // Two more tensors than there are: the second info starts in the zero padding, an empty name.
    check("tensors.gguf", [](std::string& b) { patch_u64(b, 8, 3); }, {"tensor info 1", "name of 0 bytes"});
}

TEST(GgufReader, MissingAndMistypedKeysNameTheKey) {
    ScratchDir dir;
    write_tiny(dir.file("tiny.gguf"));
    GgufReader r(dir.file("tiny.gguf"));
    std::string msg = error_of([&] { r.get_uint("llama.block_count"); });
    EXPECT_NE(msg.find("llama.block_count"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
    msg = error_of([&] { r.get_uint("general.architecture"); });
    EXPECT_NE(msg.find("general.architecture"), std::string::npos) << msg;
    EXPECT_NE(msg.find("STRING"), std::string::npos) << msg;
    EXPECT_NE(error_of([&] { r.tensor("nope"); }).find("tensor 'nope'"), std::string::npos);
}

// ---- tokenizer ---------------------------------------------------------------------------------------------

TEST(GgufTokenizer, TinyStoriesIsSentencePieceStyleWithMergeRankScores) {
    const std::string dir = quench::test::real_model_dir();
    const GgufVocab v = gguf_vocab_from_model_dir(dir);
    EXPECT_EQ(v.model, "llama");
    EXPECT_EQ(v.pre, "default");
    ASSERT_EQ(v.tokens.size(), 2048u);  // SOURCES.md: vocab 2048
    ASSERT_EQ(v.scores.size(), 2048u);
    ASSERT_EQ(v.token_types.size(), 2048u);
    EXPECT_EQ(v.tokens[0], "<unk>");
    EXPECT_EQ(v.tokens[1], "<|start_story|>");
    EXPECT_EQ(v.tokens[2], "<|end_story|>");
    EXPECT_EQ(v.tokens[3], "\n");
    EXPECT_EQ(v.token_types[0], int32_t(GgufTokenType::Unknown));
    EXPECT_EQ(v.token_types[1], int32_t(GgufTokenType::Control));
    EXPECT_EQ(v.token_types[2], int32_t(GgufTokenType::Control));
    EXPECT_EQ(v.token_types[3], int32_t(GgufTokenType::Normal));
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_EQ(v.pad_id, 0);  // tokenizer_config.json: pad_token <unk>
    EXPECT_TRUE(v.add_bos);
    EXPECT_FALSE(v.add_eos);
    ASSERT_TRUE(v.add_space_prefix.has_value());
    EXPECT_TRUE(*v.add_space_prefix);  // the normalizer prepends '▁'
    EXPECT_TRUE(v.merges.empty());

    // Against the file itself: every id's string, and scores from the merge ranks (1967 merges).
    std::ifstream f(dir + "/tokenizer.json");
    const nlohmann::json j = nlohmann::json::parse(f);
    for (auto it = j["model"]["vocab"].begin(); it != j["model"]["vocab"].end(); ++it)
        ASSERT_EQ(v.tokens[it.value().get<std::size_t>()], it.key());
    const auto& merges = j["model"]["merges"];
    ASSERT_EQ(merges.size(), 1967u);
    EXPECT_EQ(merges[0].get<std::string>(), "e \xE2\x96\x81");  // "e ▁"
    const int64_t e_end = j["model"]["vocab"]["e\xE2\x96\x81"].get<int64_t>();
    EXPECT_EQ(v.scores[std::size_t(e_end)], -1.0f);  // made by merge 0
    const std::string m4 = merges[4].get<std::string>();
    const std::string m4_token = m4.substr(0, m4.find(' ')) + m4.substr(m4.find(' ') + 1);
    EXPECT_EQ(v.scores[j["model"]["vocab"][m4_token].get<std::size_t>()], -5.0f);
    EXPECT_EQ(v.scores[j["model"]["vocab"]["e"].get<std::size_t>()], -1968.0f);  // a base character
    EXPECT_EQ(v.scores[1], 0.0f);                                                  // control
}

TEST(GgufTokenizer, Qwen3IsByteLevelWithQwen2PreTokenizer) {
    const std::string dir = quench::test::shared_data("qwen3-tokenizer");
    GgufVocab v = gguf_vocab_from_model_dir(dir);
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(v.pre, "qwen2");
    std::ifstream f(dir + "/tokenizer.json");
    const nlohmann::json j = nlohmann::json::parse(f);
    const std::size_t n_vocab = j["model"]["vocab"].size(), n_added = j["added_tokens"].size();
    EXPECT_EQ(n_vocab, 151643u);
    ASSERT_EQ(v.tokens.size(), n_vocab + n_added);  // 151669: ids are contiguous
    ASSERT_EQ(v.merges.size(), j["model"]["merges"].size());
    EXPECT_EQ(v.merges.size(), 151387u);
    EXPECT_EQ(v.merges[0], "\xC4\xA0 \xC4\xA0");  // ["Ġ", "Ġ"]
    EXPECT_EQ(v.merges[2], "i n");
    EXPECT_TRUE(v.scores.empty());
    EXPECT_EQ(v.tokens[151643], "<|endoftext|>");
    EXPECT_EQ(v.token_types[151643], int32_t(GgufTokenType::Control));
    EXPECT_EQ(v.tokens[151668], "</think>");
    EXPECT_EQ(v.token_types[151668], int32_t(GgufTokenType::UserDefined));  // special: false
    EXPECT_EQ(v.token_types[0], int32_t(GgufTokenType::Normal));
    EXPECT_EQ(v.tokens[0], "!");
    EXPECT_EQ(v.bos_id, -1);  // bos_token: null
    EXPECT_EQ(v.eos_id, 151645);  // <|im_end|>
    EXPECT_EQ(v.pad_id, 151643);
    EXPECT_FALSE(v.add_bos);
    EXPECT_FALSE(v.chat_template.empty());
    // Qwen3 models have 151936 embedding rows: the tail is padding.
    pad_gguf_vocab(v, 151936, dir);
    ASSERT_EQ(v.tokens.size(), 151936u);
    EXPECT_EQ(v.tokens.back(), "[PAD151935]");
    EXPECT_EQ(v.token_types.back(), int32_t(GgufTokenType::Unused));
    const std::string msg = error_of([&] { pad_gguf_vocab(v, 1000, dir); });
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
    EXPECT_NE(msg.find("151936 tokens"), std::string::npos) << msg;
}

TEST(GgufTokenizer, ByteLevelVocabularyWithoutMergesStillWritesTheMergesKey) {
    // The synthetic checkpoints' tokenizer is 256 bytes plus <|endoftext|> and no merges; llama.cpp refuses a
    // gpt2 vocabulary whose merges key is missing.
    ScratchDir dir;
    SynthOptions o;
    o.shape = "tinystories-656k";
    o.layers = 1;
    write_synthetic_checkpoint(dir.file("synth"), o);
    const GgufVocab v = gguf_vocab_from_model_dir(dir.file("synth"));
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_TRUE(v.merges.empty());
    GgufWriter w;
    add_gguf_vocab(w, v);
    w.write(dir.file("v.gguf"));
    GgufReader r(dir.file("v.gguf"));
    ASSERT_TRUE(r.has("tokenizer.ggml.merges"));
    EXPECT_EQ(r.get("tokenizer.ggml.merges").array_size(), 0u);
    EXPECT_EQ(r.get("tokenizer.ggml.tokens").array_size(), v.tokens.size());
    EXPECT_EQ(r.get("tokenizer.ggml.tokens").strings()[65], "A");
    EXPECT_FALSE(r.has("tokenizer.ggml.scores"));
}

TEST(GgufTokenizer, SentencePieceModelOnlyIsRefusedNamingTheFile) {
    const std::string dir = quench::test::shared_data("llama2-tokenizer");
    const std::string msg = error_of([&] { gguf_vocab_from_model_dir(dir); });
    EXPECT_NE(msg.find(dir + "/tokenizer.model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("scores"), std::string::npos) << msg;
}

TEST(GgufTokenizer, BadTokenizerJsonNamesFileAndField) {
    ScratchDir dir;
    write_bytes(dir.file("tokenizer.json"), R"({"model": {"type": "Unigram", "vocab": []}})");
    std::string msg = error_of([&] { gguf_vocab_from_model_dir(dir.path().string()); });
    EXPECT_NE(msg.find(dir.file("tokenizer.json")), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.type"), std::string::npos) << msg;
    write_bytes(dir.file("tokenizer.json"), R"({"model": {"type": "BPE", "vocab": {"a": 0}}})");
    msg = error_of([&] { gguf_vocab_from_model_dir(dir.path().string()); });
    EXPECT_NE(msg.find("model.merges"), std::string::npos) << msg;
}

// ---- q/k permutation ------------------------------------------------------------------------------------

TEST(GgufRope, PermutationTurnsRotateHalfIntoInterleavedPairs) {
    EXPECT_EQ(gguf_rope_permutation(8, 2), (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
    // HF applies RoPE to q = W x in the rotate-half layout (model/rope.h); llama.cpp's llama architecture
    // rotates adjacent pairs (2i, 2i+1) by pos * theta_i. Permuting W's rows must make the two agree, for
    // each rotated vector and so for every attention score (GQA: 4 query heads over 2 KV heads).
    const int64_t H = 4, KV = 2, D = 8, hidden = 16, T = 6;
    ModelConfig c;
    c.head_dim = D;
    c.rope_theta = 10000.0;
    torch::manual_seed(3);
    const at::Tensor Wq = torch::randn({H * D, hidden}), Wk = torch::randn({KV * D, hidden}), x = torch::randn({T, hidden});
    const auto tables = rope_tables(c, rope_inv_freq(c), T);
    auto hf_rope = [&](const at::Tensor& W, int64_t heads) {  // [h, T, D]
        return apply_rope(torch::matmul(x, W.t()).view({1, T, heads, D}).transpose(1, 2), tables.first, tables.second)[0];
    };
    auto permuted = [](const at::Tensor& W, int64_t heads) {
        const auto perm = gguf_rope_permutation(W.size(0), heads);
        return W.index_select(0, torch::tensor(perm, torch::kLong));
    };
    auto interleaved_rope = [&](const at::Tensor& W, int64_t heads) {
        at::Tensor v = torch::matmul(x, W.t()).view({T, heads, D}).transpose(0, 1).contiguous();  // [h, T, D]
        at::Tensor out = v.clone();
        for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < D / 2; ++i) {
                const double angle = double(t) * std::pow(10000.0, -2.0 * double(i) / double(D));
                const at::Tensor a = v.select(1, t).select(1, 2 * i), b = v.select(1, t).select(1, 2 * i + 1);
                out.select(1, t).select(1, 2 * i).copy_(a * std::cos(angle) - b * std::sin(angle));
                out.select(1, t).select(1, 2 * i + 1).copy_(a * std::sin(angle) + b * std::cos(angle));
            }
        return out;
    };
    const at::Tensor q_hf = hf_rope(Wq, H), k_hf = hf_rope(Wk, KV);
    const at::Tensor q_gg = interleaved_rope(permuted(Wq, H), H), k_gg = interleaved_rope(permuted(Wk, KV), KV);
    const auto perm_d = gguf_rope_permutation(D, 1);
    const at::Tensor idx = torch::tensor(perm_d, torch::kLong);
    EXPECT_TRUE(torch::allclose(q_gg, q_hf.index_select(2, idx), 1e-4, 1e-4));
    EXPECT_TRUE(torch::allclose(k_gg, k_hf.index_select(2, idx), 1e-4, 1e-4));
    const at::Tensor kv_of_q = torch::arange(H, torch::kLong).div(H / KV, "floor");
    const at::Tensor s_hf = torch::matmul(q_hf, k_hf.index_select(0, kv_of_q).transpose(1, 2));
    const at::Tensor s_gg = torch::matmul(q_gg, k_gg.index_select(0, kv_of_q).transpose(1, 2));
    EXPECT_GT(s_hf.abs().max().item<float>(), 1.0f);
    EXPECT_TRUE(torch::allclose(s_gg, s_hf, 1e-3, 1e-4)) << (s_gg - s_hf).abs().max().item<float>();
}

TEST(GgufRope, Llama3FactorsKeepHighFrequenciesAndDivideLowOnes) {
    ModelConfig c;
    c.head_dim = 128;
    c.rope_theta = 500000.0;
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_factor = 8.0;
    c.rope_low_freq_factor = 1.0;
    c.rope_high_freq_factor = 4.0;
    c.rope_original_max_positions = 8192;
    const auto f = gguf_llama3_rope_factors(c);
    ASSERT_EQ(f.size(), 64u);
    // Wavelength 2 pi / inv_freq: below 8192/4 the factor is 1, above 8192/1 it is 8, smooth between.
    EXPECT_FLOAT_EQ(f.front(), 1.0f);
    EXPECT_NEAR(f.back(), 8.0f, 1e-4);
    for (std::size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1] - 1e-6f);
    // i = 25: inv_freq = 500000^(-50/128) ~ 0.005967, wavelength ~ 1053 < 2048, so unscaled.
    EXPECT_NEAR(f[25], 1.0f, 1e-5);
}

// ---- type helpers ------------------------------------------------------------------------------------------

TEST(GgufTypes, FallbacksFollowTheRowLength) {
    std::string why;
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q4_K, 512, &why), GgmlType::Q4_K);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q4_K, 384, &why), GgmlType::Q5_0);
    EXPECT_NE(why.find("384"), std::string::npos);
    EXPECT_NE(why.find("256"), std::string::npos);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q2_K, 128), GgmlType::Q4_0);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q3_K, 128), GgmlType::Q4_0);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q5_K, 96), GgmlType::Q5_1);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q6_K, 96), GgmlType::Q8_0);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q4_K, 100), GgmlType::F16);
    EXPECT_EQ(gguf_fitting_type(GgmlType::Q4_0, 48), GgmlType::F16);
    EXPECT_EQ(gguf_fitting_type(GgmlType::F32, 7), GgmlType::F32);
}

TEST(GgufTypes, NearestTypeByBitsAndCodecs) {
    EXPECT_EQ(gguf_type_for_bits(2.0), GgmlType::Q2_K);
    EXPECT_EQ(gguf_type_for_bits(3.25), GgmlType::Q3_K);
    EXPECT_EQ(gguf_type_for_bits(4.25), GgmlType::Q4_K);
    EXPECT_EQ(gguf_type_for_bits(5.0), GgmlType::Q5_K);  // halfway between 4.5 and 5.5: the wider
    EXPECT_EQ(gguf_type_for_bits(6.5), GgmlType::Q6_K);
    EXPECT_EQ(gguf_type_for_bits(8.0), GgmlType::Q8_0);
    EXPECT_EQ(gguf_type_for_bits(16.0), GgmlType::F16);
    // rtn b=4 with a fp16 scale and offset per 128 weights: 4 + 32/128 = 4.25 bits.
    EXPECT_EQ(gguf_type_for_codec("rtn:b=4,g=128", 256, 1024), GgmlType::Q4_K);
    EXPECT_EQ(gguf_type_for_codec("rtn:b=2,g=64", 256, 1024), GgmlType::Q2_K);
    EXPECT_EQ(gguf_type_for_codec("rtn:b=8,g=128", 256, 1024), GgmlType::Q8_0);
    // A small LiftQuant layer: 2.5 code bits + 16/64 for its row scales = 2.75 bits; its share of the lift matrix
    // (2560 bits, 1.25 bits per weight of a 32 x 64 layer) is stored once per model, not in this tensor.
    EXPECT_EQ(gguf_type_for_codec("liftquant:D=20,d=8", 32, 64), GgmlType::Q2_K);
    EXPECT_EQ(gguf_file_type(GgmlType::Q8_0), 7u);  // llama.h LLAMA_FTYPE_MOSTLY_Q8_0
    EXPECT_EQ(gguf_file_type(GgmlType::Q4_K), 14u);  // LLAMA_FTYPE_MOSTLY_Q4_K_S
    EXPECT_EQ(gguf_file_type(GgmlType::Q6_K), 18u);
}

TEST(GgufTypes, TensorNamesFollowLlamaCpp) {
    EXPECT_EQ(gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.0.self_attn.q_proj.weight"), "blk.0.attn_q.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.12.self_attn.k_proj.weight"), "blk.12.attn_k.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.self_attn.v_proj.weight"), "blk.1.attn_v.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.self_attn.o_proj.weight"), "blk.1.attn_output.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.mlp.gate_proj.weight"), "blk.1.ffn_gate.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.mlp.up_proj.weight"), "blk.1.ffn_up.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.mlp.down_proj.weight"), "blk.1.ffn_down.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.input_layernorm.weight"), "blk.1.attn_norm.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.post_attention_layernorm.weight"), "blk.1.ffn_norm.weight");
    EXPECT_EQ(gguf_tensor_name("model.norm.weight"), "output_norm.weight");
    EXPECT_EQ(gguf_tensor_name("lm_head.weight"), "output.weight");
    EXPECT_EQ(gguf_tensor_name("model.layers.x.mlp.up_proj.weight"), "");
    EXPECT_EQ(gguf_tensor_name("model.layers.1.self_attn.rotary_emb.inv_freq"), "");
}

// ---- exports -------------------------------------------------------------------------------------------

TEST(GgufExport, RealModelF32RoundTripsExactly) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    const ModelConfig& c = model->config();
    GgufExportOptions opt;
    opt.default_type = GgmlType::F32;
    const std::string path = dir.file("ts-f32.gguf");
    const GgufExportReport rep = export_gguf(*model, path, opt);
    EXPECT_TRUE(rep.fallbacks.empty());
    EXPECT_EQ(rep.file_type, 0u);
    EXPECT_EQ(rep.tokenizer_model, "llama");
    EXPECT_EQ(rep.file_bytes, fs::file_size(path));

    GgufReader r(path);
    EXPECT_EQ(r.get_string("general.architecture"), "llama");
    EXPECT_EQ(r.get_string("general.name"), "tinystories-656k");
    EXPECT_EQ(r.get_uint("general.file_type"), 0u);
    EXPECT_EQ(r.get_uint("llama.context_length"), 512u);  // config.json values (SOURCES.md)
    EXPECT_EQ(r.get_uint("llama.embedding_length"), 128u);
    EXPECT_EQ(r.get_uint("llama.block_count"), 2u);
    EXPECT_EQ(r.get_uint("llama.feed_forward_length"), 384u);
    EXPECT_EQ(r.get_uint("llama.attention.head_count"), 8u);
    EXPECT_EQ(r.get_uint("llama.attention.head_count_kv"), 4u);
    EXPECT_EQ(r.get_uint("llama.rope.dimension_count"), 16u);
    EXPECT_EQ(r.get_float("llama.rope.freq_base"), 10000.0);
    EXPECT_EQ(r.get_float("llama.attention.layer_norm_rms_epsilon"), double(1e-6f));
    EXPECT_EQ(r.get_uint("llama.vocab_size"), 2048u);
    EXPECT_FALSE(r.has("llama.rope.scaling.type"));
    EXPECT_EQ(r.get_string("tokenizer.ggml.model"), "llama");
    EXPECT_EQ(r.get("tokenizer.ggml.tokens").array_size(), 2048u);
    EXPECT_EQ(r.get("tokenizer.ggml.scores").array_size(), 2048u);
    EXPECT_EQ(r.get_uint("tokenizer.ggml.bos_token_id"), 1u);
    EXPECT_EQ(r.get_uint("tokenizer.ggml.eos_token_id"), 2u);
    EXPECT_TRUE(r.get_bool("tokenizer.ggml.add_bos_token"));

    // 20 tensors: embeddings, 9 per block, the final norm; output.weight is omitted (tied embeddings).
    ASSERT_EQ(r.tensors().size(), 20u);
    EXPECT_EQ(r.find_tensor("output.weight"), nullptr);
    EXPECT_EQ(r.tensor("token_embd.weight").ne, (std::vector<int64_t>{128, 2048}));
    EXPECT_EQ(r.tensor("blk.1.attn_k.weight").ne, (std::vector<int64_t>{128, 64}));
    EXPECT_EQ(r.tensor("blk.0.ffn_down.weight").ne, (std::vector<int64_t>{384, 128}));
    for (const std::string& hf : model->checkpoint().names()) {
        const std::string name = gguf_tensor_name(hf);
        if (name.empty() || name == "output.weight") continue;
        EXPECT_EQ(r.tensor(name).type, GgmlType::F32) << name;
        const at::Tensor back = gguf_weight_as_hf(r, name, rope_heads_for(name, c));
        EXPECT_TRUE(torch::equal(back, model->checkpoint().tensor_f32(hf))) << name;
    }
    // The permutation really moved q rows: GGUF row 1 is HF row D/2 = 8 of head 0.
    const at::Tensor q_gguf = from_vector(r.dequantize("blk.0.attn_q.weight"), {128, 128});
    EXPECT_TRUE(torch::equal(q_gguf[1], model->checkpoint().tensor_f32("model.layers.0.self_attn.q_proj.weight")[8]));
}

TEST(GgufExport, RealModelQ8_0WithinTheBlockBound) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    GgufExportOptions opt;
    opt.default_type = GgmlType::Q8_0;
    const std::string path = dir.file("ts-q8.gguf");
    const GgufExportReport rep = export_gguf(*model, path, opt);
    EXPECT_TRUE(rep.fallbacks.empty());  // every row length (128, 384) is a multiple of 32
    EXPECT_EQ(rep.file_type, 7u);
    GgufReader r(path);
    EXPECT_EQ(r.get_uint("general.file_type"), 7u);
    int checked = 0;
    for (const GgufTensorInfo& t : r.tensors()) {
        if (t.ne.size() == 1) {
            EXPECT_EQ(t.type, GgmlType::F32) << t.name;  // norms stay F32
            continue;
        }
        ASSERT_EQ(t.type, GgmlType::Q8_0) << t.name;
        std::string hf;
        for (const std::string& n : model->checkpoint().names())
            if (gguf_tensor_name(n) == t.name) hf = n;
        const at::Tensor orig = model->checkpoint().tensor_f32(hf).contiguous();
        const int64_t heads = rope_heads_for(t.name, model->config());
        const auto perm = heads ? gguf_rope_permutation(t.ne[1], heads) : std::vector<int64_t>{};
        const auto y = r.dequantize(t.name);
        const uint8_t* data = r.tensor_data(t);
        for (int64_t row = 0; row < t.ne[1]; ++row) {
            const float* x = orig.data_ptr<float>() + (heads ? perm[std::size_t(row)] : row) * t.ne[0];
            for (int64_t blk = 0; blk < t.ne[0] / 32; ++blk) {
                const uint8_t* b = data + (row * (t.ne[0] / 32) + blk) * 34;
                const float d = half_to_float(uint16_t(b[0] | (b[1] << 8)));
                for (int i = 0; i < 32; ++i) {
                    const int64_t col = blk * 32 + i;
                    ASSERT_LE(std::fabs(x[col] - y[std::size_t(row * t.ne[0] + col)]), d / 2 * (1 + 1e-6f))
                        << t.name << " row " << row << " col " << col;
                }
            }
        }
        ++checked;
    }
    EXPECT_EQ(checked, 1 + 2 * 7);
    // 655360 matrix weights at 34 bytes per 32, plus norms and the vocabulary.
    EXPECT_GT(fs::file_size(path), 696320u);
    EXPECT_LT(fs::file_size(path), 800000u);
}

TEST(GgufExport, KQuantsOnA256WideCheckpointWithPerTensorTypes) {
    ScratchDir dir;
    const auto model = load_model(write_k_checkpoint(dir));
    GgufExportOptions opt;
    opt.default_type = GgmlType::Q4_K;
    opt.tensor_types = {{"token_embd.weight", GgmlType::Q6_K},    {"output.weight", GgmlType::Q6_K},
                        {"blk.0.attn_v.weight", GgmlType::Q5_K},  {"blk.0.ffn_up.weight", GgmlType::Q3_K},
                        {"blk.0.ffn_gate.weight", GgmlType::Q2_K}, {"blk.0.ffn_norm.weight", GgmlType::Q8_0}};
    opt.name = "k-test";
    const std::string path = dir.file("k.gguf");
    const GgufExportReport rep = export_gguf(*model, path, opt);
    ASSERT_EQ(rep.fallbacks.size(), 1u);  // only the norm request
    EXPECT_EQ(rep.fallbacks[0].tensor, "blk.0.ffn_norm.weight");
    EXPECT_EQ(rep.fallbacks[0].used, GgmlType::F32);
    EXPECT_EQ(rep.file_type, 18u);  // Q6_K holds the most weights (2 x 2048 x 256)

    GgufReader r(path);
    EXPECT_EQ(r.get_string("general.name"), "k-test");
    EXPECT_EQ(r.get_uint("general.file_type"), 18u);
    EXPECT_FALSE(r.has("llama.attention.key_length"));  // 4 x 64 == 256
    const std::map<std::string, std::pair<GgmlType, double>> want = {
        {"token_embd.weight", {GgmlType::Q6_K, 0.03}}, {"output.weight", {GgmlType::Q6_K, 0.03}},
        {"blk.0.attn_q.weight", {GgmlType::Q4_K, 0.1}}, {"blk.0.attn_k.weight", {GgmlType::Q4_K, 0.1}},
        {"blk.0.attn_v.weight", {GgmlType::Q5_K, 0.05}}, {"blk.0.attn_output.weight", {GgmlType::Q4_K, 0.1}},
        {"blk.0.ffn_gate.weight", {GgmlType::Q2_K, 0.4}}, {"blk.0.ffn_up.weight", {GgmlType::Q3_K, 0.2}},
        {"blk.0.ffn_down.weight", {GgmlType::Q4_K, 0.1}},
    };
    for (const auto& [name, tw] : want) {
        ASSERT_EQ(r.tensor(name).type, tw.first) << name;
        std::string hf;
        for (const std::string& n : model->checkpoint().names())
            if (gguf_tensor_name(n) == name) hf = n;
        const at::Tensor orig = model->checkpoint().tensor_f32(hf);
        const at::Tensor back = gguf_weight_as_hf(r, name, rope_heads_for(name, model->config()));
        const double rel = ((back - orig).norm() / orig.norm()).item<double>();
        EXPECT_LT(rel, tw.second) << name;
        if (rope_heads_for(name, model->config()) > 0) {  // the rows really were permuted: unpaired, ~sqrt(2)
            const at::Tensor raw = gguf_weight_as_hf(r, name, 0);
            EXPECT_GT(((raw - orig).norm() / orig.norm()).item<double>(), 1.0) << name;
        }
    }
    EXPECT_EQ(r.tensor("blk.0.ffn_norm.weight").type, GgmlType::F32);
    EXPECT_TRUE(torch::equal(gguf_weight_as_hf(r, "output_norm.weight", 0), model->checkpoint().tensor_f32("model.norm.weight")));

    // The size the export dialog and quench-cli print before writing is the data the file holds, tensor by
    // tensor as the reader sizes them (mixed K-quants, the fallback to F32 included); only the header and the
    // vocabulary are left out.
    uint64_t data = 0;
    for (const auto& t : r.tensors()) data += t.nbytes;
    EXPECT_EQ(estimate_export_bytes(*model, {}, ExportFormat::Gguf, opt), static_cast<double>(data));
    EXPECT_LT(data, rep.file_bytes);
}

TEST(GgufExport, FallbacksAreReportedAndFileTypeFollowsTheDominantType) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    GgufExportOptions opt;
    opt.default_type = GgmlType::Q4_K;  // rows of 128 and 384: no K-quant fits
    const GgufExportReport rep = export_gguf(*model, dir.file("ts.gguf"), opt);
    ASSERT_EQ(rep.fallbacks.size(), 15u);  // token_embd + 7 matrices in each of 2 blocks
    for (const GgufFallback& f : rep.fallbacks) {
        EXPECT_EQ(f.requested, GgmlType::Q4_K) << f.tensor;
        EXPECT_EQ(f.used, GgmlType::Q5_0) << f.tensor;
        EXPECT_NE(f.reason.find("256"), std::string::npos) << f.reason;
    }
    EXPECT_EQ(rep.file_type, 8u);  // LLAMA_FTYPE_MOSTLY_Q5_0
    GgufReader r(dir.file("ts.gguf"));
    EXPECT_EQ(r.tensor("blk.0.ffn_down.weight").type, GgmlType::Q5_0);
}

// A width no ggml block divides (a 330-wide MLP: down_proj rows of 330): that tensor falls back per tensor to
// F16, the report says which and why, and the file holds its exact fp16 rounding; the others keep the type.
TEST(GgufExport, ARowNoBlockDividesFallsBackToF16WithItsReason) {
    ScratchDir dir;
    const std::string src = quench::test::write_tiny_llama(dir.path(), "w330", 128, 330);
    std::filesystem::copy_file(quench::test::real_model_dir() + "/tokenizer.json", src + "/tokenizer.json");
    const auto model = load_model(src);
    GgufExportOptions opt;
    opt.default_type = GgmlType::Q4_0;
    const GgufExportReport rep = export_gguf(*model, dir.file("w330.gguf"), opt);
    std::vector<std::string> fell;
    for (const GgufFallback& f : rep.fallbacks) {
        if (f.requested != GgmlType::Q4_0) continue;  // the norms' F32 entries
        fell.push_back(f.tensor);
        EXPECT_EQ(f.used, GgmlType::F16) << f.tensor;  // Q8_0's blocks of 32 do not divide 330 either
        EXPECT_EQ(f.reason, "row length 330 is not a multiple of 32") << f.tensor;
    }
    EXPECT_EQ(fell, (std::vector<std::string>{"blk.0.ffn_down.weight", "blk.1.ffn_down.weight"}));
    GgufReader r(dir.file("w330.gguf"));
    EXPECT_EQ(r.tensor("blk.0.ffn_up.weight").type, GgmlType::Q4_0);
    ASSERT_EQ(r.tensor("blk.1.ffn_down.weight").type, GgmlType::F16);
    const at::Tensor down = model->checkpoint().tensor_f32("model.layers.1.mlp.down_proj.weight");
    EXPECT_TRUE(torch::equal(gguf_weight_as_hf(r, "blk.1.ffn_down.weight", 0), down.to(torch::kHalf).to(torch::kFloat)));
}

// An existing file is never overwritten silently: refused naming the path, replaced only when asked.
TEST(GgufExport, AnExistingFileIsRefusedUnlessReplaceIsSet) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    const std::string path = dir.file("ts.gguf");
    { std::ofstream(path) << "the user's own file"; }
    EXPECT_EQ(error_of([&] { export_gguf(*model, path); }),
              path + ": already exists; choose another file, or replace it (--replace, or Replace in the dialog)");
    std::ifstream kept(path);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), "the user's own file");
    GgufExportOptions opt;
    opt.replace = true;
    export_gguf(*model, path, opt);
    EXPECT_EQ(GgufReader(path).tensor("blk.0.ffn_down.weight").type, GgmlType::F16);
    EXPECT_NE(error_of([&] { export_gguf(*model, dir.path().string(), opt); }).find("is a directory"), std::string::npos);
}

TEST(GgufExport, RopeScalingKeysAndLlama3Factors) {
    ScratchDir dir;
    const std::string src = quench::test::real_model_dir();
    ModelConfig c = ModelConfig::from_file(src + "/config.json");
    c.rope_scaling = RopeScaling::Linear;
    c.rope_factor = 2.0;
    {
        LlamaModel m(c, Checkpoint::open(src, c.tie_word_embeddings));
        export_gguf(m, dir.file("lin.gguf"));
        GgufReader r(dir.file("lin.gguf"));
        EXPECT_EQ(r.get_string("llama.rope.scaling.type"), "linear");
        EXPECT_EQ(r.get_float("llama.rope.scaling.factor"), 2.0);
        EXPECT_EQ(r.find_tensor("rope_freqs.weight"), nullptr);
        // The default type is F16: each weight is its fp16 rounding (round to nearest even).
        EXPECT_EQ(r.get_uint("general.file_type"), 1u);
        ASSERT_EQ(r.tensor("blk.0.ffn_up.weight").type, GgmlType::F16);
        const at::Tensor up = m.checkpoint().tensor_f32("model.layers.0.mlp.up_proj.weight");
        EXPECT_TRUE(torch::equal(gguf_weight_as_hf(r, "blk.0.ffn_up.weight", 0), up.to(torch::kHalf).to(torch::kFloat)));
    }
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_factor = 8.0;
    c.rope_original_max_positions = 64;  // short enough that the 16-dim heads see all three regimes
    {
        LlamaModel m(c, Checkpoint::open(src, c.tie_word_embeddings));
        export_gguf(m, dir.file("l3.gguf"));
        GgufReader r(dir.file("l3.gguf"));
        EXPECT_FALSE(r.has("llama.rope.scaling.type"));
        EXPECT_EQ(r.tensor("rope_freqs.weight").ne, (std::vector<int64_t>{8}));
        const auto f = r.dequantize("rope_freqs.weight");
        EXPECT_EQ(f, gguf_llama3_rope_factors(c));
        EXPECT_FLOAT_EQ(f.front(), 1.0f);
        EXPECT_NEAR(f.back(), 8.0f, 1e-4);
    }
}

TEST(GgufExport, ReplacedHeadIsWrittenEvenWhenTied) {
    ScratchDir dir;
    auto model = load_model(quench::test::real_model_dir());
    const std::size_t head = model->layers().select_kind(LayerKind::LmHead).at(0);
    model->replace_weight(head, model->original_weight(head) * 0.5);
    GgufExportOptions opt;
    opt.default_type = GgmlType::F32;
    export_gguf(*model, dir.file("head.gguf"), opt);
    GgufReader r(dir.file("head.gguf"));
    ASSERT_NE(r.find_tensor("output.weight"), nullptr);
    EXPECT_TRUE(torch::equal(gguf_weight_as_hf(r, "output.weight", 0), model->weight(head)));
    EXPECT_TRUE(torch::equal(gguf_weight_as_hf(r, "token_embd.weight", 0), model->original_weight(head)));
}

TEST(GgufExport, BadOptionsAndWeightsNameTheTensor) {
    ScratchDir dir;
    auto model = load_model(quench::test::real_model_dir());
    GgufExportOptions opt;
    opt.tensor_types["blk.0.attn_qq.weight"] = GgmlType::Q8_0;
    std::string msg = error_of([&] { export_gguf(*model, dir.file("x.gguf"), opt); });
    EXPECT_NE(msg.find("blk.0.attn_qq.weight"), std::string::npos) << msg;
    const std::size_t q = *model->layers().index_of("model.layers.1.self_attn.q_proj");
    at::Tensor w = model->weight(q).clone();
    w[3][5] = std::nanf("");
    model->replace_weight(q, w);
    msg = error_of([&] { export_gguf(*model, dir.file("x.gguf")); });
    EXPECT_NE(msg.find("model.layers.1.self_attn.q_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("non-finite"), std::string::npos) << msg;
    EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(GgufExport, FullDiskLeavesNoFile) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    const std::string path = dir.file("full.gguf");
    // A file size limit makes write() fail with EFBIG like a full disk; it is per process, so the export runs
    // in a child, single-threaded (an OpenMP pool does not survive fork).
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::signal(SIGXFSZ, SIG_IGN);
        const rlimit lim{256 * 1024, 256 * 1024};
        ::setrlimit(RLIMIT_FSIZE, &lim);
        GgufExportOptions opt;
        opt.default_type = GgmlType::F32;
        opt.use_threads = false;
        int code = 1;
        try {
            export_gguf(*model, path, opt);
        } catch (const Error& e) {
            const std::string msg = e.what();
            code = msg.find(path) != std::string::npos && msg.find("File too large") != std::string::npos ? 0 : 2;
        }
        ::_exit(code);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the export succeeded; 2: the error did not name the path and cause";
    EXPECT_TRUE(entries(dir.path()).empty());  // neither the final name nor the temporary
}

TEST(GgufExport, TargetUnderAFileNamesThePath) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    write_bytes(dir.file("plain-file"), "x");
    const std::string under_file = dir.file("plain-file") + "/out.gguf";
    const std::string msg = error_of([&] { export_gguf(*model, under_file); });
    EXPECT_NE(msg.find(under_file), std::string::npos) << msg;
    EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;
    EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{"plain-file"}));
}

TEST(GgufExport, ReadOnlyDirectoryNamesThePath) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    const std::string ro = dir.file("ro");
    fs::create_directory(ro);
    ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
    if (::access(ro.c_str(), W_OK) == 0) GTEST_SKIP() << "running with permission override (root)";
    const std::string msg = error_of([&] { export_gguf(*model, ro + "/out.gguf"); });
    EXPECT_NE(msg.find(ro + "/out.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
    EXPECT_TRUE(entries(ro).empty());
}

TEST(GgufExport, CancellationStopsAndLeavesNoFile) {
    ScratchDir dir;
    const auto model = load_model(quench::test::real_model_dir());
    CancelAtFraction sink(0.3);
    GgufExportOptions opt;
    opt.default_type = GgmlType::Q8_0;
    EXPECT_THROW(export_gguf(*model, dir.file("c.gguf"), opt, &sink), Cancelled);
    EXPECT_TRUE(sink.cancelled());
    EXPECT_TRUE(entries(dir.path()).empty());
}
