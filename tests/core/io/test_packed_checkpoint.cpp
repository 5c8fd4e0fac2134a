// The packed checkpoint: every codec example quantized on a real model, written, read back part for part
// and loaded through LlamaModel::load gives the in-memory weights bit for bit and the same perplexity;
// mixed allocations, shared tables, tied embeddings and the size accounting hold; every malformed input
// fails naming the file and field; output faults leave nothing under the final name.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "io/model_files.h"
#include "io/model_loading.h"
#include "io/packed_checkpoint.h"
#include "io/packed_loader.h"
#include "model/safetensors_writer.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "model/safetensors.h"
#include "model/synthetic.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"
#include "jobs/model_quantizer.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/progress.h"
#include "support/test_paths.h"

using namespace quench;
using nlohmann::json;
using quench::test::CancelAfter;
using quench::test::contains_all;
using quench::test::entries;
using quench::test::error_of;
using quench::test::read_bytes;
using quench::test::ScratchDir;
using quench::test::write_bytes;
namespace fs = std::filesystem;

namespace {

struct PackedData {
    std::unique_ptr<Tokenizer> tok = load_tokenizer(test::real_model_dir());
    std::vector<int32_t> calib =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.train.txt"), true, 2048);
    std::vector<int32_t> eval =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.eval.txt"), true, 2048);
};

const PackedData& packed_data() {
    static PackedData d;
    return d;
}

QuantizeOptions quant_options() {
    QuantizeOptions o;
    o.capture.ctx = 128;
    o.capture.sample_rows = 64;
    return o;
}

double eval_perplexity(const LlamaModel& m) {
    EvalOptions o;
    o.ctx = 256;
    return evaluate_perplexity({&m}, packed_data().eval, o, packed_data().tok->bos_id()).perplexity;
}

// Rewrites a safetensors header in place (data section untouched: offsets are relative to it).
void edit_header(const std::string& path, const std::function<void(json&)>& edit) {
    const std::string bytes = read_bytes(path);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
    json header = json::parse(bytes.substr(8, n));
    edit(header);
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = char(uint8_t(uint64_t(text.size()) >> (8 * i)));
    write_bytes(path, out + text + bytes.substr(8 + n));
}

void edit_descriptor(const std::string& dir, const std::string& weight, const std::function<void(json&)>& edit) {
    edit_header(dir + "/model.safetensors", [&](json& h) {
        auto& slot = h["__metadata__"][std::string(kPackedDescriptorPrefix) + weight];
        json d = json::parse(slot.get<std::string>());
        edit(d);
        slot = d.dump();
    });
}

void edit_config(const std::string& dir, const std::function<void(json&)>& edit) {
    json c = json::parse(read_bytes(dir + "/config.json"));
    edit(c);
    write_bytes(dir + "/config.json", c.dump(2));
}

std::vector<std::size_t> indices(const LlamaModel& m, const std::vector<std::string>& names) {
    std::vector<std::size_t> out;
    for (const auto& n : names) out.push_back(*m.layers().index_of(n));
    return out;
}

// Every registry weight of `loaded` equals `ref`'s current weight exactly, every other tensor the model
// reads equals the source checkpoint's, and the perplexity is the same.
void expect_same_model(const LlamaModel& loaded, const LlamaModel& ref) {
    ASSERT_EQ(loaded.layers().size(), ref.layers().size());
    for (std::size_t i = 0; i < ref.layers().size(); ++i)
        EXPECT_TRUE(torch::equal(loaded.weight(i), ref.weight(i))) << ref.layers().at(i).name;
    for (const std::string& n : ref.tensor_names()) {
        if (!ref.layers().index_of(n) && loaded.checkpoint().contains(n)) {
            EXPECT_TRUE(torch::equal(loaded.checkpoint().tensor_f32(n), ref.checkpoint().tensor_f32(n))) << n;
        }
    }
    const double p_ref = eval_perplexity(ref), p_loaded = eval_perplexity(loaded);
    EXPECT_NEAR(p_loaded, p_ref, 1e-6 * p_ref);
}

void expect_same_parts(const QuantizedTensor& back, const QuantizedTensor& q, const std::string& name) {
    EXPECT_EQ(back.spec, q.spec) << name;
    EXPECT_EQ(back.rows, q.rows) << name;
    EXPECT_EQ(back.cols, q.cols) << name;
    ASSERT_EQ(back.parts.size(), q.parts.size()) << name;
    for (std::size_t k = 0; k < q.parts.size(); ++k) {
        const QuantPart &a = back.parts[k], &b = q.parts[k];
        EXPECT_EQ(a.name, b.name) << name;
        EXPECT_EQ(a.role, b.role) << name << " " << b.name;
        EXPECT_EQ(a.bits, b.bits) << name << " " << b.name;
        EXPECT_EQ(a.shared, b.shared) << name << " " << b.name;
        EXPECT_EQ(a.data.scalar_type(), b.data.scalar_type()) << name << " " << b.name;
        EXPECT_TRUE(torch::equal(a.data, b.data)) << name << " " << b.name;
    }
}

std::vector<std::string> all_examples() {
    std::vector<std::string> out;
    for (const auto& t : codec_table())
        for (const auto& e : t.examples()) out.push_back(e);
    return out;
}

// Layers of different shapes: square, GQA-narrow (k_proj) and wide (down_proj).
const std::vector<std::string> kRealLayers = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                                              "model.layers.1.mlp.down_proj"};

}  // namespace

class EveryCodecExample : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryCodecExample, RoundTripIsBitExactWithTheSamePerplexity) {
    const CodecSpec spec = CodecSpec::parse(GetParam());
    ScratchDir dir;
    auto m = load_model(test::real_model_dir());
    const auto layers = indices(*m, kRealLayers);
    const QuantizeResult r = quantize_model_layers(*m, uniform_plan(layers, spec), packed_data().calib,
                                                   quant_options());
    const std::string out = dir.file("packed");
    const PackedWriteReport rep = write_packed_checkpoint(*m, r.tensors, out);
    EXPECT_EQ(rep.quantized_tensors, 3);
    EXPECT_DOUBLE_EQ(rep.total_bits_per_weight(), r.total_bits_per_weight());

    const auto back = read_packed_tensors(out);
    ASSERT_EQ(back.size(), r.tensors.size());
    for (const auto& [l, q] : r.tensors) {
        const std::string name = m->layers().at(l).weight_name();
        ASSERT_TRUE(back.count(name)) << name;
        expect_same_parts(back.at(name), q, name);
    }
    auto loaded = load_model(out);  // the ordinary entry point detects the packed format
    EXPECT_EQ(loaded->decoded_weights().size(), layers.size());
    expect_same_model(*loaded, *m);
}

INSTANTIATE_TEST_SUITE_P(PackedCheckpoint, EveryCodecExample, ::testing::ValuesIn(all_examples()),
                         [](const ::testing::TestParamInfo<std::string>& example) {
                             std::string s = example.param;
                             for (char& c : s)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return s;
                         });

TEST(PackedCheckpoint, MixedCodecsSharedTablesAndTiedHead) {
    auto m = load_model(test::real_model_dir());
    ASSERT_TRUE(m->config().tie_word_embeddings);
    std::vector<LayerPlan> plan;
    auto add = [&](const std::string& layer, const std::string& spec) {
        plan.push_back({*m->layers().index_of(layer), CodecSpec::parse(spec)});
    };
    add("model.layers.0.self_attn.q_proj", "rtn:b=4,g=128");
    add("model.layers.0.mlp.gate_proj", "liftquant:D=16,d=8");
    add("model.layers.1.mlp.up_proj", "liftquant:D=16,d=8");
    add("model.layers.1.mlp.down_proj", "qamw:k=7");
    add("model.layers.1.self_attn.v_proj", "qamw:k=7");
    add("lm_head", "rtn:b=8,g=32");
    const QuantizeResult r = quantize_model_layers(*m, plan, packed_data().calib, quant_options());
    ScratchDir dir;
    const std::string out = dir.file("mixed");
    const PackedWriteReport rep = write_packed_checkpoint(*m, r.tensors, out);

    // Shared tables stored once each, and both users of a table name the same tensor.
    SafetensorsFile f(out + "/model.safetensors");
    std::vector<std::string> shared;
    for (const auto& t : f.tensors())
        if (t.name.rfind(kPackedSharedPrefix, 0) == 0) shared.push_back(t.name);
    ASSERT_EQ(shared.size(), 2u);
    EXPECT_EQ(rep.shared_parts, 2);
    auto part_tensor = [&](const std::string& weight, const std::string& part) {
        const json d = json::parse(f.metadata().at(kPackedDescriptorPrefix + weight));
        for (const auto& p : d["parts"])
            if (p["name"] == part) return p["tensor"].get<std::string>();
        return std::string();
    };
    EXPECT_EQ(part_tensor("model.layers.0.mlp.gate_proj.weight", "M"),
              part_tensor("model.layers.1.mlp.up_proj.weight", "M"));
    EXPECT_EQ(part_tensor("model.layers.1.mlp.down_proj.weight", "codebook"),
              part_tensor("model.layers.1.self_attn.v_proj.weight", "codebook"));
    EXPECT_EQ(part_tensor("model.layers.0.self_attn.q_proj.weight", "codes"),
              "model.layers.0.self_attn.q_proj.weight.codes");
    EXPECT_EQ(f.metadata().at("quench.format"), "quench-packed");
    EXPECT_EQ(f.metadata().at("quench.format_version"), "1");

    // The quantized lm_head is no longer the embedding: the embedding is stored in full, untied.
    ASSERT_NE(f.find("model.embed_tokens.weight"), nullptr);
    EXPECT_EQ(f.find("lm_head.weight"), nullptr);
    const json config = json::parse(read_bytes(out + "/config.json"));
    EXPECT_EQ(config["tie_word_embeddings"], false);
    const json& qc = config["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "quench");
    EXPECT_EQ(qc["format"], "quench-packed");
    EXPECT_EQ(qc["format_version"], 1);
    EXPECT_DOUBLE_EQ(qc["bits_per_weight"].get<double>(), r.total_bits_per_weight());
    ASSERT_EQ(qc["modules"].size(), plan.size());
    for (const auto& p : plan) EXPECT_EQ(qc["modules"][m->layers().at(p.layer).name], p.spec.to_string());
    for (const char* tok :
         {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
        EXPECT_TRUE(read_bytes(out + "/" + tok) == read_bytes(test::real_model_dir() + "/" + tok)) << tok;

    auto loaded = load_model(out);
    EXPECT_FALSE(loaded->config().tie_word_embeddings);
    EXPECT_TRUE(torch::equal(loaded->checkpoint().tensor_f32("model.embed_tokens.weight"),
                             m->checkpoint().tensor_f32("model.embed_tokens.weight")));
    expect_same_model(*loaded, *m);
    EXPECT_EQ(loaded->num_params(), m->num_params() + m->config().vocab_size * m->config().hidden_size);
}

TEST(PackedCheckpoint, UnquantizedTensorsAreCopiedAsStoredAndAliasesKept) {
    auto m = load_model(test::real_model_dir());
    const auto layers = indices(*m, {"model.layers.1.self_attn.o_proj"});
    const QuantizeResult r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=3,g=64")), {}, {});
    ScratchDir dir;
    write_packed_checkpoint(*m, r.tensors, dir.file("p"));
    SafetensorsFile packed(dir.file("p") + "/model.safetensors"), source(test::real_model_dir() + "/model.safetensors");
    // The tied embedding stays an alias of lm_head, as in the source.
    EXPECT_EQ(packed.find("model.embed_tokens.weight"), nullptr);
    EXPECT_EQ(packed.metadata().at("model.embed_tokens.weight"), "lm_head.weight");
    EXPECT_TRUE(json::parse(read_bytes(dir.file("p") + "/config.json"))["tie_word_embeddings"].get<bool>());
    int copied = 0;
    for (const auto& t : source.tensors()) {
        if (t.name == "model.layers.1.self_attn.o_proj.weight") {
            EXPECT_EQ(packed.find(t.name), nullptr);
            continue;
        }
        const TensorInfo* p = packed.find(t.name);
        ASSERT_NE(p, nullptr) << t.name;
        EXPECT_EQ(p->dtype, t.dtype);
        EXPECT_EQ(p->shape, t.shape);
        ASSERT_EQ(p->nbytes(), t.nbytes());
        EXPECT_EQ(std::memcmp(packed.data(*p), source.data(t), t.nbytes()), 0) << t.name;
        // Tensors are laid out by decreasing element size, so each is naturally aligned.
        EXPECT_EQ(p->begin % dtype_size(p->dtype), 0u) << t.name;
        ++copied;
    }
    EXPECT_EQ(copied, 19);
}

TEST(PackedCheckpoint, Bf16SourceTensorsKeepTheirStoredDtype) {
    ScratchDir dir;
    SynthOptions so;
    so.shape = "tinystories-656k";
    so.dtype = DType::BF16;
    write_synthetic_checkpoint(dir.file("src"), so);
    auto m = load_model(dir.file("src"));
    const auto layers = indices(*m, {"model.layers.0.mlp.up_proj"});
    const QuantizeResult r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=4,g=64")), {}, {});
    write_packed_checkpoint(*m, r.tensors, dir.file("p"));
    SafetensorsFile f(dir.file("p") + "/model.safetensors");
    ASSERT_NE(f.find("model.norm.weight"), nullptr);
    EXPECT_EQ(f.find("model.norm.weight")->dtype, DType::BF16);
    EXPECT_EQ(f.find("model.layers.1.mlp.down_proj.weight")->dtype, DType::BF16);
    auto loaded = load_model(dir.file("p"));
    for (std::size_t i = 0; i < m->layers().size(); ++i)
        EXPECT_TRUE(torch::equal(loaded->weight(i), m->weight(i))) << m->layers().at(i).name;
}

TEST(SafetensorsStream, StreamsInAlignedOrderAndChecksProducedBytes) {
    ScratchDir dir;
    const std::vector<uint8_t> bytes = {1, 2, 3};
    const std::vector<double> wide = {0.5, -2.0};
    const std::vector<uint16_t> half = {0x3c00};
    SafetensorsStream st;
    st.add_bytes("u8", DType::U8, {3}, bytes.data(), bytes.size());
    st.add_bytes("f16", DType::F16, {1}, half.data(), 2);
    st.add("f64", DType::F64, {2}, [&](const SafetensorsStream::ByteSink& sink) {
        sink(wide.data(), 8);  // in two pieces
        sink(wide.data() + 1, 8);
    });
    st.set_metadata("k", "v");
    const uint64_t size = st.write(dir.file("a.safetensors"));
    EXPECT_EQ(size, fs::file_size(dir.file("a.safetensors")));
    SafetensorsFile f(dir.file("a.safetensors"));
    ASSERT_EQ(f.tensors().size(), 3u);
    EXPECT_EQ(f.tensors()[0].name, "f64");  // by decreasing element size
    EXPECT_EQ(f.tensors()[1].name, "f16");
    EXPECT_EQ(f.tensors()[2].name, "u8");
    EXPECT_EQ(std::memcmp(f.data(*f.find("f64")), wide.data(), 16), 0);
    EXPECT_EQ(std::memcmp(f.data(*f.find("u8")), bytes.data(), 3), 0);
    EXPECT_EQ(f.metadata().at("k"), "v");

    SafetensorsStream bad;
    bad.add("short", DType::F32, {4}, [&](const SafetensorsStream::ByteSink& sink) { sink(wide.data(), 8); });
    const std::string msg = error_of([&] { bad.write(dir.file("b.safetensors")); });
    EXPECT_TRUE(contains_all(msg, {dir.file("b.safetensors"), "'short'", "produced 8 bytes", "16"})) << msg;
    EXPECT_FALSE(fs::exists(dir.file("b.safetensors")));
}

TEST(PackedCheckpoint, SizeIsIdealPlusHeaderAndByteRounding) {
    auto m = load_model(test::real_model_dir());
    const auto layers = m->layers().select_glob("model.layers.*");
    const QuantizeResult r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=4,g=128")), {}, {});
    ScratchDir dir;
    const PackedWriteReport rep = write_packed_checkpoint(*m, r.tensors, dir.file("p"));
    const std::string path = dir.file("p") + "/model.safetensors";
    EXPECT_EQ(rep.file_bytes, fs::file_size(path));
    const std::string bytes = read_bytes(path);
    uint64_t header = 0;
    for (int i = 0; i < 8; ++i) header |= uint64_t(uint8_t(bytes[i])) << (8 * i);
    EXPECT_EQ(rep.header_bytes, 8 + header);
    EXPECT_EQ(rep.file_bytes, rep.header_bytes + rep.part_bytes + rep.unquantized_bytes);
    // 4-bit codes + an fp16 scale and a 4-bit zero per 128 weights: 4 + 20/128 bits per weight.
    EXPECT_DOUBLE_EQ(rep.total_bits_per_weight(), 4.0 + 20.0 / 128.0);
    EXPECT_EQ(rep.quantized_params, m->layers().total_params() - m->layers().at(m->layers().size() - 1).params());
    // Unquantized: the tied embedding/lm_head and the five norms, all F32.
    EXPECT_EQ(rep.unquantized_bytes, uint64_t(2048 * 128 + 5 * 128) * 4);
    const double overhead = static_cast<double>(rep.file_bytes) - rep.ideal_bytes();
    EXPECT_GE(overhead, static_cast<double>(rep.header_bytes));
    EXPECT_LT(overhead - static_cast<double>(rep.header_bytes), 3.0 * rep.quantized_tensors);  // < 1 byte per part
    std::printf(
        "[ size ] rtn:b=4,g=128 on 14 layers: file %llu bytes, ideal %.1f, overhead %.1f (%.2f%%): "
        "header %llu, byte rounding %.1f\n",
        static_cast<unsigned long long>(rep.file_bytes), rep.ideal_bytes(), overhead,
        100.0 * overhead / rep.ideal_bytes(), static_cast<unsigned long long>(rep.header_bytes),
        overhead - static_cast<double>(rep.header_bytes));
}

// ---- malformed input --------------------------------------------------------------------------------

namespace {

const std::string kQ = "model.layers.0.self_attn.q_proj.weight";
const std::string kDown = "model.layers.1.mlp.down_proj.weight";

// A valid packed checkpoint of the real model with RTN on two layers, written once per test.
struct PackedFixture {
    ScratchDir dir;
    std::string out = dir.file("packed");
    PackedFixture() {
        auto m = load_model(test::real_model_dir());
        const auto layers = indices(*m, {"model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"});
        auto r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=4,g=128")), {}, {});
        write_packed_checkpoint(*m, r.tensors, out);
    }
    std::string file() const { return out + "/model.safetensors"; }
    std::string load_error() const {
        return error_of([&] { load_packed_model(out); });
    }
};

}  // namespace

TEST(PackedCheckpointBadInput, TruncatedFile) {
    PackedFixture fx;
    const auto size = fs::file_size(fx.file());
    fs::resize_file(fx.file(), size - 100);
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "data_offsets"})) << msg;
    EXPECT_EQ(error_of([&] { load_model(fx.out); }), msg);
}

TEST(PackedCheckpointBadInput, DescriptorNamesMissingPart) {
    PackedFixture fx;
    edit_descriptor(fx.out, kQ, [](json& d) { d["parts"][1]["tensor"] = "no.such.tensor"; });
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "'" + kQ + "'", "part 'scales'", "'no.such.tensor'", "not in the file"}))
        << msg;
}

TEST(PackedCheckpointBadInput, PartWithWrongShape) {
    PackedFixture fx;
    edit_header(fx.file(), [](json& h) { h[kQ + ".scales"]["shape"] = {1, 128}; });  // same bytes, shape [128, 1]
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "'" + kQ + "'", "part 'scales'", "F16 [128, 1]", "F16 [1, 128]"})) << msg;
}

TEST(PackedCheckpointBadInput, PartWithWrongDtype) {
    PackedFixture fx;
    edit_header(fx.file(), [](json& h) { h[kQ + ".scales"]["dtype"] = "BF16"; });
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "'" + kQ + "'", "part 'scales'", "descriptor says F16", "BF16"})) << msg;
}

TEST(PackedCheckpointBadInput, PartBitsThatDisagreeWithItsBytes) {
    PackedFixture fx;
    edit_descriptor(fx.out, kQ, [](json& d) { d["parts"][0]["bits"] = 8 * 128 * 128; });
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "'" + kQ + "'", "part 'codes'", "bits need"})) << msg;
}

TEST(PackedCheckpointBadInput, UnknownCodec) {
    PackedFixture fx;
    edit_descriptor(fx.out, kQ, [](json& d) { d["spec"] = "nosuch:b=4"; });
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "'" + kQ + "'", "unknown codec 'nosuch'"})) << msg;
}

TEST(PackedCheckpointBadInput, MissingQuantizationConfig) {
    PackedFixture fx;
    edit_config(fx.out, [](json& c) { c.erase("quantization_config"); });
    const std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.out + "/config.json", "quantization_config is missing"})) << msg;
    // Without it the directory looks like a plain HF checkpoint, which lacks the quantized tensor.
    const std::string plain = error_of([&] { load_model(fx.out); });
    EXPECT_TRUE(contains_all(plain, {fx.out, "missing tensor '" + kQ + "'"})) << plain;
}

TEST(PackedCheckpointBadInput, ConfigDisagreesWithDescriptors) {
    PackedFixture fx;
    edit_config(fx.out,
                [](json& c) { c["quantization_config"]["modules"]["model.layers.0.self_attn.q_proj"] = "rtn:b=3"; });
    std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.out + "/config.json", "modules['model.layers.0.self_attn.q_proj']", "rtn:b=3"}))
        << msg;
    edit_config(fx.out, [](json& c) { c["quantization_config"]["format_version"] = 2; });
    msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.out + "/config.json", "format_version 2"})) << msg;
}

TEST(PackedCheckpointBadInput, LyingRowsOrCols) {
    PackedFixture fx;
    edit_descriptor(fx.out, kQ, [](json& d) { d["rows"] = 64; });
    std::string msg = fx.load_error();
    EXPECT_TRUE(contains_all(msg, {fx.file(), "'" + kQ + "'", "rows 64, cols 128", "bits"})) << msg;

    // Swapped rows and cols cost the same bits for this spec; the codec then finds its scales misshapen.
    PackedFixture fx2;
    edit_descriptor(fx2.out, kDown, [](json& d) {
        d["rows"] = 384;
        d["cols"] = 128;
    });
    msg = fx2.load_error();
    EXPECT_TRUE(contains_all(msg, {fx2.file(), "'" + kDown + "'", "cannot dequantize", "[384, 1]"})) << msg;
}

TEST(PackedCheckpointBadInput, ForeignQuantMethodIsNamed) {
    PackedFixture fx;
    edit_config(fx.out, [](json& c) { c["quantization_config"]["quant_method"] = "gptq"; });
    const std::string msg = error_of([&] { load_model(fx.out); });
    EXPECT_TRUE(contains_all(msg, {fx.out + "/config.json", "quant_method 'gptq'", "not supported"})) << msg;
}

// ---- output faults ----------------------------------------------------------------------------------

namespace {

struct Quantized {
    std::unique_ptr<LlamaModel> model = load_model(test::real_model_dir());
    QuantizeResult result = quantize_model_layers(
        *model,
        uniform_plan(indices(*model, {"model.layers.0.mlp.up_proj", "model.layers.1.self_attn.q_proj"}),
                     CodecSpec::parse("rtn:b=2,g=64")),
        {}, {});
    void write(const std::string& out, ProgressSink* progress = nullptr, bool replace = false) const {
        write_packed_checkpoint(*model, result.tensors, out, progress, ExportOptions{replace});
    }
};

// Runs fn in a forked child (limits and identities are per process) and returns "" when fn threw a
// quench::Error whose message contains every expected part, else what went wrong.
std::string child_error(const std::function<void()>& fn, const std::vector<std::string>& expected,
                        const std::function<void()>& setup) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return "pipe failed";
    const pid_t pid = ::fork();
    if (pid < 0) return "fork failed";
    if (pid == 0) {
        ::close(pipefd[0]);
        ::alarm(120);  // a hang fails the test instead of stalling the suite
        at::set_num_threads(1);
        setup();
        std::string msg = "no error";
        try {
            fn();
        } catch (const Error& e) {
            msg = contains_all(e.what(), expected) ? "" : std::string("unexpected message: ") + e.what();
        }
        if (::write(pipefd[1], msg.data(), msg.size()) < 0) ::_exit(3);
        ::_exit(0);
    }
    ::close(pipefd[1]);
    std::string msg;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child died (status " + std::to_string(status) + ")";
    return msg;
}

}  // namespace

TEST(PackedCheckpointFaults, FullDiskLeavesNoDirectory) {
    Quantized q;
    ScratchDir dir;
    const std::string out = dir.file("packed");
    // A file size limit makes write() fail with EFBIG part way, as a full disk would.
    const std::string err = child_error([&] { q.write(out); }, {out, "model.safetensors", "File too large"},
                                        [] {
                                            std::signal(SIGXFSZ, SIG_IGN);
                                            const rlimit lim{256 * 1024, 256 * 1024};
                                            ::setrlimit(RLIMIT_FSIZE, &lim);
                                        });
    EXPECT_EQ(err, "");
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(entries(dir.path()).empty());  // the staging directory was removed too
}

TEST(PackedCheckpointFaults, ReadOnlyTargetDirectory) {
    Quantized q;
    ScratchDir dir;
    const std::string parent = dir.file("ro"), out = parent + "/packed";
    fs::create_directory(parent);
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    ASSERT_EQ(::chmod(parent.c_str(), 0555), 0);
    // root ignores directory permissions, so the child drops to an unprivileged user first.
    const std::string err = child_error([&] { q.write(out); }, {out, "cannot create a temporary directory", parent},
                                        [] {
                                            if (::geteuid() == 0 && ::setresuid(65534, 65534, 65534) != 0) ::_exit(4);
                                        });
    EXPECT_EQ(err, "");
    EXPECT_TRUE(entries(parent).empty());
}

TEST(PackedCheckpointFaults, CancellationAtEveryStageLeavesNothing) {
    Quantized q;
    ScratchDir dir;
    const std::string out = dir.file("packed");
    int cancelled = 0;
    for (int n = 0; n < 200; ++n) {
        CancelAfter sink(n);
        try {
            q.write(out, &sink);
            break;  // n exceeds the number of progress steps: the export completed
        } catch (const Cancelled&) {
            ++cancelled;
        }
        EXPECT_TRUE(entries(dir.path()).empty()) << "cancelled after " << n;
    }
    EXPECT_GT(cancelled, 3);  // cancelled before, during and after writing the tensors
    EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
}

TEST(PackedCheckpointFaults, ExistingTargetIsRefusedUnlessReplacingAnExport) {
    Quantized q;
    ScratchDir dir;
    const std::string out = dir.file("packed");
    q.write(out);
    const std::string first = read_bytes(out + "/model.safetensors");
    std::string msg = error_of([&] { q.write(out); });
    EXPECT_TRUE(contains_all(msg, {out, "already exists"})) << msg;
    q.write(out, nullptr, /*replace=*/true);
    EXPECT_TRUE(read_bytes(out + "/model.safetensors") == first);  // deterministic output
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"packed"});

    write_bytes(out + "/notes.txt", "mine");
    msg = error_of([&] { q.write(out, nullptr, true); });
    EXPECT_TRUE(contains_all(msg, {out, "'notes.txt'", "refusing to replace"})) << msg;
    EXPECT_EQ(read_bytes(out + "/notes.txt"), "mine");

    msg = error_of([&] { q.write(test::real_model_dir(), nullptr, true); });
    // The message names the directory as given, lexically normalised ("a/../b" -> "b"), links kept.
    const std::string source = std::filesystem::path(test::real_model_dir()).lexically_normal().string();
    EXPECT_TRUE(contains_all(msg, {source, "source model's directory"})) << msg;
}

TEST(PackedCheckpointFaults, ReplacedLayerWithoutItsTensorIsRefused) {
    Quantized q;
    auto partial = q.result.tensors;
    partial.erase(partial.begin());
    ScratchDir dir;
    const std::string msg = error_of([&] { write_packed_checkpoint(*q.model, partial, dir.file("p")); });
    EXPECT_TRUE(contains_all(msg, {dir.file("p"), "model.layers.0.mlp.up_proj", "no quantized tensor"})) << msg;
    EXPECT_TRUE(entries(dir.path()).empty());
}
