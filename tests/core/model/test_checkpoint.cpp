// Checkpoint directories: single file and sharded, tied-weight aliases, and the fp32 view of tensors
// (zero-copy over the mapping when possible).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/safetensors_writer.h"
#include "model/checkpoint.h"
#include "support/test_paths.h"

using namespace quench;
using quench::test::ScratchDir;

namespace {

const std::string kEmbed = "model.embed_tokens.weight";
const std::string kHead = "lm_head.weight";

std::string real_file() { return quench::test::real_model_dir() + "/model.safetensors"; }

std::string expected_error(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no quench::Error thrown";
    return "";
}

::testing::AssertionResult mentions_all(const std::string& msg, std::initializer_list<std::string> parts) {
    for (const auto& p : parts)
        if (msg.find(p) == std::string::npos)
            return ::testing::AssertionFailure() << "'" << msg << "' does not mention '" << p << "'";
    return ::testing::AssertionSuccess();
}

// The pathname of the /proc/self/maps region holding addr, or "" when no file mapping holds it.
std::string mapping_of(const void* addr) {
    std::ifstream maps("/proc/self/maps");
    const auto a = reinterpret_cast<uintptr_t>(addr);
    for (std::string line; std::getline(maps, line);) {
        std::istringstream in(line);
        uintptr_t lo = 0, hi = 0;
        char dash;
        std::string perms, offset, dev, inode, path;
        in >> std::hex >> lo >> dash >> hi >> perms >> offset >> dev >> inode >> path;
        if (a >= lo && a < hi) return path;
    }
    return "";
}

// A shard of F32 [2] tensors holding {i, i + 0.5} for the i-th name.
void write_shard(const std::string& path, const std::vector<std::string>& names) {
    std::vector<float> data;
    for (std::size_t i = 0; i < names.size(); ++i) data.insert(data.end(), {float(i), float(i) + 0.5f});
    SafetensorsWriter w;
    for (std::size_t i = 0; i < names.size(); ++i) w.add(names[i], DType::F32, {2}, &data[2 * i], 8);
    w.write(path);
}

void write_index(const ScratchDir& dir, const nlohmann::json& weight_map) {
    write_file_atomic(dir.file("model.safetensors.index.json"),
                      nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
}

}  // namespace

TEST(Safetensors, RealModelHeader) {
    SafetensorsFile f(real_file());
    // Verified with python3's json over the header: 20 stored tensors, the embedding stored only as an alias.
    EXPECT_EQ(f.tensors().size(), 20u);
    ASSERT_NE(f.find("lm_head.weight"), nullptr);
    EXPECT_EQ(f.find("lm_head.weight")->shape, (std::vector<int64_t>{2048, 128}));
    EXPECT_EQ(f.find("model.layers.0.self_attn.k_proj.weight")->shape, (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(f.find("model.embed_tokens.weight"), nullptr);
    EXPECT_EQ(f.metadata().at("model.embed_tokens.weight"), "lm_head.weight");
    EXPECT_EQ(f.tensors().front().name, "lm_head.weight");
    EXPECT_EQ(f.tensors().back().name, "model.norm.weight");
    EXPECT_EQ(f.tensors().back().end + 8 + 2160, f.file_size());
}

TEST(Checkpoint, RealModelAliasSharesTheMapping) {
    const Checkpoint ck = Checkpoint::open(quench::test::real_model_dir());
    EXPECT_EQ(ck.files().size(), 1u);
    EXPECT_EQ(ck.names().size(), 21u);  // 20 stored + the embedding alias from __metadata__
    ASSERT_TRUE(ck.contains(kEmbed));
    EXPECT_EQ(ck.info(kEmbed).name, kHead);
    EXPECT_EQ(ck.info(kHead).shape, (std::vector<int64_t>{2048, 128}));
    EXPECT_EQ(ck.info("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(ck.total_bytes(), 2626168u);

    const at::Tensor head = ck.tensor_f32(kHead);
    const at::Tensor embed = ck.tensor_f32(kEmbed);
    EXPECT_EQ(head.sizes(), (std::vector<int64_t>{2048, 128}));
    EXPECT_EQ(head.scalar_type(), at::kFloat);
    EXPECT_EQ(head.data_ptr(), embed.data_ptr());
    // No copy: the data lives in the file mapping itself.
    EXPECT_EQ(mapping_of(head.data_ptr()), std::filesystem::canonical(real_file()).string());
}

TEST(Checkpoint, RealModelValuesMatchFileBytes) {
    const Checkpoint ck = Checkpoint::open(quench::test::real_model_dir());
    const std::string name = "model.layers.0.self_attn.k_proj.weight";
    const TensorInfo& info = ck.info(name);
    std::ifstream in(real_file(), std::ios::binary);
    uint64_t header_len = 0;
    in.read(reinterpret_cast<char*>(&header_len), 8);
    in.seekg(std::streamoff(8 + header_len + info.begin));
    std::vector<float> expect(info.numel());
    in.read(reinterpret_cast<char*>(expect.data()), std::streamsize(info.nbytes()));
    const at::Tensor t = ck.tensor_f32(name);
    ASSERT_EQ(t.numel(), info.numel());
    EXPECT_EQ(std::memcmp(t.data_ptr<float>(), expect.data(), info.nbytes()), 0);
}

TEST(Checkpoint, TensorKeepsMappingAliveAndWritesStayPrivate) {
    at::Tensor t;
    float first = 0;
    {
        const Checkpoint ck = Checkpoint::open(quench::test::real_model_dir());
        t = ck.tensor_f32("model.norm.weight");
        first = t[0].item<float>();
    }
    // The checkpoint is gone; the tensor's deleter still holds the mapping.
    EXPECT_EQ(mapping_of(t.data_ptr()), std::filesystem::canonical(real_file()).string());
    EXPECT_EQ(t[0].item<float>(), first);
    t.fill_(123.0f);  // lands in copy-on-write pages (the shared file is read-only anyway)
    const Checkpoint again = Checkpoint::open(quench::test::real_model_dir());
    EXPECT_EQ(again.tensor_f32("model.norm.weight")[0].item<float>(), first);
}

TEST(Checkpoint, ShardedEquivalentToSingleFile) {
    ScratchDir dir;
    const SafetensorsFile src(real_file());
    const auto& tensors = src.tensors();
    SafetensorsWriter shards[3];
    nlohmann::json weight_map;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const std::size_t s = i * 3 / tensors.size();
        const std::string shard = "model-0000" + std::to_string(s + 1) + "-of-00003.safetensors";
        shards[s].add(tensors[i].name, tensors[i].dtype, tensors[i].shape, src.data(tensors[i]), tensors[i].nbytes());
        weight_map[tensors[i].name] = shard;
        if (tensors[i].name == kHead) shards[s].set_metadata(kEmbed, kHead);
    }
    for (int s = 0; s < 3; ++s) shards[s].write(dir.file("model-0000" + std::to_string(s + 1) + "-of-00003.safetensors"));
    write_index(dir, weight_map);

    const Checkpoint single = Checkpoint::open(quench::test::real_model_dir());
    const Checkpoint sharded = Checkpoint::open(dir.path().string());
    EXPECT_EQ(sharded.files().size(), 3u);
    ASSERT_EQ(sharded.names(), single.names());
    for (const std::string& name : single.names()) {
        EXPECT_EQ(sharded.info(name).shape, single.info(name).shape) << name;
        EXPECT_TRUE(torch::equal(sharded.tensor_f32(name), single.tensor_f32(name))) << name;
    }
}

TEST(Checkpoint, TieWordEmbeddingsAliasesTheMissingSide) {
    ScratchDir dir;
    write_shard(dir.file("model.safetensors"), {kEmbed, "model.norm.weight"});
    const Checkpoint untied = Checkpoint::open(dir.path().string(), false);
    EXPECT_FALSE(untied.contains(kHead));
    EXPECT_TRUE(mentions_all(expected_error([&] { untied.info(kHead); }), {dir.path().string(), "'lm_head.weight'"}));

    const Checkpoint tied = Checkpoint::open(dir.path().string(), true);
    ASSERT_TRUE(tied.contains(kHead));
    EXPECT_EQ(tied.info(kHead).name, kEmbed);
    EXPECT_EQ(tied.tensor_f32(kHead).data_ptr(), tied.tensor_f32(kEmbed).data_ptr());
    EXPECT_EQ(tied.names(), (std::vector<std::string>{kHead, kEmbed, "model.norm.weight"}));
}

TEST(Checkpoint, TieFollowsAMetadataAlias) {
    ScratchDir dir;
    const float v[2] = {4.0f, 5.0f};
    SafetensorsWriter w;
    w.add("shared", DType::F32, {2}, v, sizeof v);
    w.set_metadata(kHead, "shared");  // lm_head exists only as an alias
    w.write(dir.file("model.safetensors"));
    const Checkpoint ck = Checkpoint::open(dir.path().string(), true);
    EXPECT_EQ(ck.info(kEmbed).name, "shared");
    EXPECT_EQ(ck.tensor_f32(kEmbed).data_ptr(), ck.tensor_f32(kHead).data_ptr());
}

TEST(Checkpoint, MissingWeightsFile) {
    ScratchDir dir;
    EXPECT_TRUE(mentions_all(expected_error([&] { Checkpoint::open(dir.path().string()); }),
                             {"no model.safetensors or model.safetensors.index.json in " + dir.path().string()}));
}

TEST(Checkpoint, IndexListsMissingTensor) {
    ScratchDir dir;
    write_shard(dir.file("a.safetensors"), {"x"});
    write_index(dir, {{"x", "a.safetensors"}, {"ghost", "a.safetensors"}});
    EXPECT_TRUE(mentions_all(expected_error([&] { Checkpoint::open(dir.path().string()); }),
                             {dir.file("model.safetensors.index.json"), "tensor 'ghost'", "shard 'a.safetensors'"}));
}

TEST(Checkpoint, IndexListsMissingShard) {
    ScratchDir dir;
    write_shard(dir.file("a.safetensors"), {"x"});
    write_index(dir, {{"x", "a.safetensors"}, {"y", "b.safetensors"}});
    EXPECT_TRUE(mentions_all(
        expected_error([&] { Checkpoint::open(dir.path().string()); }),
        {dir.file("model.safetensors.index.json"), "shard 'b.safetensors'", "tensor 'y'", "does not exist"}));
}

TEST(Checkpoint, TensorDefinedInTwoShards) {
    ScratchDir dir;
    write_shard(dir.file("a.safetensors"), {"x", "y"});
    write_shard(dir.file("b.safetensors"), {"y", "z"});
    write_index(dir, {{"x", "a.safetensors"}, {"y", "a.safetensors"}, {"z", "b.safetensors"}});
    EXPECT_TRUE(mentions_all(expected_error([&] { Checkpoint::open(dir.path().string()); }),
                             {dir.file("b.safetensors"), "tensor 'y'", dir.file("a.safetensors")}));
}

TEST(Checkpoint, IndexNotJson) {
    ScratchDir dir;
    write_file_atomic(dir.file("model.safetensors.index.json"), "{\"weight_map\": ");
    EXPECT_TRUE(mentions_all(expected_error([&] { Checkpoint::open(dir.path().string()); }),
                             {dir.file("model.safetensors.index.json"), "not valid JSON"}));
}

TEST(Checkpoint, IndexWithoutWeightMap) {
    ScratchDir dir;
    write_file_atomic(dir.file("model.safetensors.index.json"), "{\"metadata\": {}}");
    EXPECT_TRUE(mentions_all(expected_error([&] { Checkpoint::open(dir.path().string()); }),
                             {dir.file("model.safetensors.index.json"), "weight_map"}));
}

TEST(Checkpoint, CorruptShardNamesTheShard) {
    ScratchDir dir;
    write_file_atomic(dir.file("a.safetensors"), "junk");
    write_index(dir, {{"x", "a.safetensors"}});
    EXPECT_TRUE(
        mentions_all(expected_error([&] { Checkpoint::open(dir.path().string()); }), {dir.file("a.safetensors")}));
}

TEST(Checkpoint, HalfAndBFloat16ConvertToF32) {
    ScratchDir dir;
    const std::vector<float> values{1.0f, -2.5f, 0.15625f, 65504.0f, std::ldexp(1.0f, -24), -0.0f, INFINITY, 3.0e-3f};
    std::vector<uint16_t> half, bf16;
    for (float v : values) {
        half.push_back(float_to_half(v));
        bf16.push_back(float_to_bf16(v));
    }
    SafetensorsWriter w;
    w.add("h", DType::F16, {2, 4}, half.data(), half.size() * 2);
    w.add("b", DType::BF16, {4, 2}, bf16.data(), bf16.size() * 2);
    w.write(dir.file("model.safetensors"));

    const Checkpoint ck = Checkpoint::open(dir.path().string());
    const at::Tensor h = ck.tensor_f32("h"), b = ck.tensor_f32("b");
    EXPECT_EQ(h.sizes(), (std::vector<int64_t>{2, 4}));
    EXPECT_EQ(b.sizes(), (std::vector<int64_t>{4, 2}));
    ASSERT_EQ(h.scalar_type(), at::kFloat);
    ASSERT_EQ(b.scalar_type(), at::kFloat);
    for (std::size_t i = 0; i < values.size(); ++i) {
        EXPECT_EQ(h.data_ptr<float>()[i], half_to_float(half[i])) << i;
        EXPECT_EQ(b.data_ptr<float>()[i], bf16_to_float(bf16[i])) << i;
    }
    // Values exactly representable in both formats survive unchanged.
    EXPECT_EQ(b.data_ptr<float>()[1], -2.5f);
    EXPECT_EQ(h.data_ptr<float>()[3], 65504.0f);
    EXPECT_EQ(b.data_ptr<float>()[3], 65536.0f);  // 65504 rounds to 2^16 in bf16's 8-bit mantissa
}

TEST(Checkpoint, MisalignedF32IsCopied) {
    ScratchDir dir;
    const uint8_t pad = 7;
    const float values[3] = {1.25f, -3.0f, 1e-20f};
    SafetensorsWriter w;
    w.add("pad", DType::U8, {1}, &pad, 1);  // pushes the next tensor to an odd offset
    w.add("w", DType::F32, {3}, values, sizeof values);
    w.write(dir.file("model.safetensors"));

    const Checkpoint ck = Checkpoint::open(dir.path().string());
    EXPECT_EQ(ck.info("w").begin, 1u);
    const at::Tensor t = ck.tensor_f32("w");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4, 0u);
    EXPECT_NE(mapping_of(t.data_ptr()), dir.file("model.safetensors"));
    EXPECT_TRUE(torch::equal(t, torch::tensor({1.25f, -3.0f, 1e-20f})));
}

TEST(Checkpoint, IntegerDtypeIsRejected) {
    ScratchDir dir;
    const int32_t v[2] = {1, 2};
    SafetensorsWriter w;
    w.add("ids", DType::I32, {2}, v, sizeof v);
    w.write(dir.file("model.safetensors"));
    const Checkpoint ck = Checkpoint::open(dir.path().string());
    EXPECT_TRUE(
        mentions_all(expected_error([&] { ck.tensor_f32("ids"); }), {dir.file("model.safetensors"), "'ids'", "I32"}));
}
