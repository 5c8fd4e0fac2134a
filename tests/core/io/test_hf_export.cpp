// The HF dequantized export: loaded back, every tensor equals the model's current weight rounded to
// F16/BF16 (checked against an independent scalar rounding too), the perplexity stays within the rounding
// tolerance, ties are kept or broken as they must be, and faults leave nothing under the final name.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "io/hf_export.h"
#include "io/model_loading.h"
#include "io/packed_checkpoint.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "jobs/model_quantizer.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"

using namespace quench;
using nlohmann::json;
using quench::test::contains_all;
using quench::test::error_of;
using quench::test::read_bytes;
using quench::test::ScratchDir;
namespace fs = std::filesystem;

namespace {

const std::vector<int32_t>& eval_tokens() {
    static const std::vector<int32_t> t = [] {
        auto tok = load_tokenizer(test::real_model_dir());
        return tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.eval.txt"), true, 4096);
    }();
    return t;
}

double perplexity(const LlamaModel& m) {
    EvalOptions o;
    o.ctx = 256;
    return evaluate_perplexity({&m}, eval_tokens(), o, 1).perplexity;
}

// The real model with every block's linear layers quantized to 3 bits (so rounding meets real
// dequantized values, not only the checkpoint's).
std::unique_ptr<LlamaModel> quantized_model(QuantizeResult* result = nullptr, bool with_head = false) {
    auto m = load_model(test::real_model_dir());
    auto layers = m->layers().select_glob(with_head ? "model.layers.*,lm_head" : "model.layers.*");
    auto r = quantize_model_layers(*m, uniform_plan(layers, CodecSpec::parse("rtn:b=3,g=64")), {}, {});
    if (result) *result = std::move(r);
    return m;
}

at::Tensor current(const LlamaModel& m, const std::string& name) {
    const auto i = m.layers().index_of(name);
    return i && m.layers().at(*i).weight_name() == name ? m.weight(*i) : m.checkpoint().tensor_f32(name);
}

// Loaded back, every tensor the model reads equals the source's current one rounded to dtype.
void expect_rounded_copy(const LlamaModel& src, const std::string& dir, DType dtype) {
    auto back = load_model(dir);
    const at::ScalarType type = dtype == DType::F16 ? at::kHalf : at::kBFloat16;
    SafetensorsFile f(dir + "/model.safetensors");
    for (const std::string& n : src.tensor_names()) {
        const at::Tensor want = current(src, n).to(type).to(at::kFloat);
        EXPECT_TRUE(torch::equal(current(*back, n), want)) << n;
        if (const TensorInfo* t = f.find(n)) {
            EXPECT_EQ(t->dtype, dtype) << n;
        }
    }
}

}  // namespace

TEST(HfExport, F16AndBf16RoundTripAndPerplexity) {
    auto m = quantized_model();
    const double ppl32 = perplexity(*m);
    for (const DType dtype : {DType::F16, DType::BF16}) {
        ScratchDir dir;
        const std::string out = dir.file("hf");
        const HfExportReport rep = export_hf_dequantized(*m, out, dtype);
        EXPECT_TRUE(rep.tied);
        EXPECT_EQ(rep.tensors, 20);  // embedding (tied with lm_head), 2 x (2 norms + 7 linears), final norm
        EXPECT_EQ(rep.file_bytes, fs::file_size(out + "/model.safetensors"));
        expect_rounded_copy(*m, out, dtype);

        const json config = json::parse(read_bytes(out + "/config.json"));
        EXPECT_EQ(config["torch_dtype"], dtype == DType::F16 ? "float16" : "bfloat16");
        EXPECT_FALSE(config.contains("quantization_config"));
        EXPECT_TRUE(config["tie_word_embeddings"].get<bool>());
        SafetensorsFile f(out + "/model.safetensors");
        EXPECT_EQ(f.tensors().size(), 20u);
        EXPECT_EQ(f.find("lm_head.weight"), nullptr);  // one stored tensor for the tied pair
        for (const char* tok :
             {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
            EXPECT_TRUE(read_bytes(out + "/" + tok) == read_bytes(test::real_model_dir() + "/" + tok)) << tok;

        // Rounding weights to 11 (F16) or 8 (BF16) significant bits moves perplexity by far less than the
        // 3-bit quantization did; the tolerances are about 10x the measured changes (see docs/packed-format.md).
        const double ppl = perplexity(*load_model(out));
        const double rel = std::abs(ppl - ppl32) / ppl32;
        std::printf("[ ppl  ] %s export: %.6f vs fp32 %.6f (relative %.2e)\n", dtype_name(dtype), ppl, ppl32, rel);
        EXPECT_LT(rel, dtype == DType::F16 ? 1e-3 : 1e-2);
    }
}

TEST(HfExport, RoundingMatchesAnIndependentScalarConversion) {
    auto m = quantized_model();
    ScratchDir dir;
    export_hf_dequantized(*m, dir.file("f16"), DType::F16);
    export_hf_dequantized(*m, dir.file("bf16"), DType::BF16);
    SafetensorsFile f16(dir.file("f16") + "/model.safetensors"), bf16(dir.file("bf16") + "/model.safetensors");
    const std::string name = "model.layers.1.mlp.down_proj.weight";
    const at::Tensor w = m->weight(*m->layers().index_of(name)).contiguous();
    const float* x = w.data_ptr<float>();
    const auto* h = reinterpret_cast<const uint16_t*>(f16.data(*f16.find(name)));
    const auto* b = reinterpret_cast<const uint16_t*>(bf16.data(*bf16.find(name)));
    int64_t bad = 0;
    for (int64_t i = 0; i < w.numel(); ++i) bad += (h[i] != float_to_half(x[i])) + (b[i] != float_to_bf16(x[i]));
    EXPECT_EQ(bad, 0);
}

TEST(HfExport, ReplacedLmHeadIsStoredOnItsOwnAndUntied) {
    auto m = quantized_model(nullptr, /*with_head=*/true);
    ScratchDir dir;
    const std::string out = dir.file("hf");
    const HfExportReport rep = export_hf_dequantized(*m, out, DType::F16);
    EXPECT_FALSE(rep.tied);
    EXPECT_EQ(rep.tensors, 21);
    EXPECT_FALSE(json::parse(read_bytes(out + "/config.json"))["tie_word_embeddings"].get<bool>());
    expect_rounded_copy(*m, out, DType::F16);
    auto back = load_model(out);
    EXPECT_FALSE(torch::equal(back->checkpoint().tensor_f32("model.embed_tokens.weight"),
                              back->checkpoint().tensor_f32("lm_head.weight")));
}

TEST(HfExport, FromAPackedCheckpointEqualsFromMemory) {
    QuantizeResult r;
    auto m = quantized_model(&r);
    ScratchDir dir;
    write_packed_checkpoint(*m, r.tensors, dir.file("packed"));
    auto packed = load_model(dir.file("packed"));
    export_hf_dequantized(*m, dir.file("from_memory"), DType::BF16);
    export_hf_dequantized(*packed, dir.file("from_packed"), DType::BF16);
    for (const char* file : {"model.safetensors", "config.json", "tokenizer.json"})
        EXPECT_TRUE(read_bytes(dir.file("from_packed") + "/" + file) ==
                    read_bytes(dir.file("from_memory") + "/" + file))
            << file;
}

TEST(HfExport, RejectsOtherDtypes) {
    auto m = load_model(test::real_model_dir());
    ScratchDir dir;
    const std::string msg = error_of([&] { export_hf_dequantized(*m, dir.file("hf"), DType::F32); });
    EXPECT_TRUE(contains_all(msg, {dir.file("hf"), "F16 or BF16", "F32"})) << msg;
    EXPECT_FALSE(fs::exists(dir.file("hf")));
}

TEST(HfExport, CancellationLeavesNothing) {
    auto m = load_model(test::real_model_dir());
    ScratchDir dir;
    // Cancels once a few tensors are written: the file is mid-way.
    struct CancelMidway : ProgressSink {
        int reports = 0;
        void report(double, const std::string&) override { ++reports; }
        bool cancelled() const override { return reports >= 5; }
    } sink;
    EXPECT_THROW(export_hf_dequantized(*m, dir.file("hf"), DType::F16, &sink), Cancelled);
    EXPECT_EQ(sink.reports, 5);
    EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(HfExport, FullDiskLeavesNoDirectory) {
    auto m = quantized_model();
    ScratchDir dir;
    const std::string out = dir.file("hf");
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::alarm(120);
        at::set_num_threads(1);
        std::signal(SIGXFSZ, SIG_IGN);
        const rlimit lim{256 * 1024, 256 * 1024};
        ::setrlimit(RLIMIT_FSIZE, &lim);
        try {
            export_hf_dequantized(*m, out, DType::F16);
        } catch (const Error& e) {
            ::_exit(contains_all(e.what(), {out, "model.safetensors", "File too large"}) ? 0 : 1);
        }
        ::_exit(2);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the error did not name the file and cause; 2: no error";
    EXPECT_TRUE(fs::is_empty(dir.path()));
}
