// Run records: SHA-256 against FIPS 180-2 and the digests published in shared/data/SOURCES.md, and
// Quench's result structs (provenance, per-layer quantize table, KL and perplexity reports, quantized
// tensors) written to a run and read back exactly, on the real tinystories model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/build_info.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "io/sha256.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "jobs/model_quantizer.h"
#include "support/errors.h"
#include "support/test_paths.h"

using namespace quench;
using quench::test::contains;
using quench::test::error_of;
using quench::test::ScratchDir;

namespace {

// Digests published in shared/data/SOURCES.md.
const char* kModelSafetensorsSha = "187d0d5e8360d9625e40e0b35ec57d1ef0eea1a60ddcf09412246bed3484852f";
const char* kConfigSha = "5d34a34a12acbd8b0d4d8b400cb4ad72e6cdd49673d4b27b5b4c4e93030bc7ee";
const char* kTokenizerSha = "9a7917d490ac034a4e69eb081096226971887e9e66b0969355421613f62b12e7";
const char* kValTextSha = "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6";

struct RecordsFixture {
    std::unique_ptr<LlamaModel> model = load_model(test::real_model_dir());
    std::unique_ptr<Tokenizer> tok = load_tokenizer(test::real_model_dir());
    std::vector<int32_t> eval =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.eval.txt"), true, 1024);
};

RunStore new_store(const ScratchDir& dir) { return RunStore::create_or_open(dir.file("study.h5")); }

RunInfo info() { return current_run_info("quantize", "quench-cli quantize", 7); }

}  // namespace

TEST(Sha256, Fips180Vectors) {
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    // One million 'a', streamed in uneven pieces.
    Sha256 h;
    const std::string piece(999, 'a');
    std::size_t left = 1000000;
    while (left) {
        const std::size_t n = std::min(left, piece.size());
        h.update(piece.data(), n);
        left -= n;
    }
    EXPECT_EQ(h.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    EXPECT_THROW(h.hex(), Error);
}

TEST(Sha256, FilesMatchPublishedDigests) {
    uint64_t bytes = 0;
    EXPECT_EQ(sha256_file(test::real_model_dir() + "/model.safetensors", nullptr, &bytes), kModelSafetensorsSha);
    EXPECT_EQ(bytes, 2626168u);
    const std::string missing = test::shared_data("no-such-file.bin");
    const std::string msg = error_of([&] { sha256_file(missing); });
    EXPECT_TRUE(contains(msg, missing) && contains(msg, "No such file")) << msg;
    const std::string dir_msg = error_of([&] { sha256_file(test::real_model_dir()); });
    EXPECT_TRUE(contains(dir_msg, test::real_model_dir())) << dir_msg;
    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(sha256_file(test::real_model_dir() + "/model.safetensors", &cancel), Cancelled);
}

TEST(RunRecords, CommandLineQuotesWhatTheShellWouldSplit) {
    const char* argv[] = {"quench-cli", "quantize", "/models/my model", "--codec", "rtn:b=4,g=128,sym", "it's", ""};
    EXPECT_EQ(command_line_text(7, argv),
              "quench-cli quantize '/models/my model' --codec rtn:b=4,g=128,sym 'it'\\''s' ''");
}

TEST(RunRecords, ModelAndDataProvenanceRoundTrip) {
    const RecordsFixture f;
    const ModelProvenance m = model_provenance(*f.model);
    EXPECT_EQ(m.architecture, "LlamaForCausalLM");
    EXPECT_EQ(m.path, std::filesystem::absolute(test::real_model_dir()).lexically_normal().string());
    std::map<std::string, FileDigest> by_name;
    for (const auto& d : m.files) by_name[d.path] = d;
    ASSERT_TRUE(by_name.count("model.safetensors") && by_name.count("config.json") && by_name.count("tokenizer.json"));
    EXPECT_EQ(by_name["model.safetensors"].sha256, kModelSafetensorsSha);
    EXPECT_EQ(by_name["model.safetensors"].bytes, 2626168u);
    EXPECT_EQ(by_name["config.json"].sha256, kConfigSha);
    EXPECT_EQ(by_name["config.json"].bytes, 649u);
    EXPECT_EQ(by_name["tokenizer.json"].sha256, kTokenizerSha);

    const std::string text = test::shared_data("tinystories-valid/tinystories_val.txt");
    const DataProvenance d = data_provenance("eval", text, 39780, "ctx=512 stride=512 windows=78 scored=39703 of 39780 tokens, bos=start");
    EXPECT_EQ(d.file.sha256, kValTextSha);
    EXPECT_EQ(d.file.bytes, 794375u);

    ScratchDir dir;
    const RunStore store = new_store(dir);
    RunWriter w = store.begin_run(info());
    write_model_provenance(w, m);
    write_data_provenance(w, {d, data_provenance("calib", text, 4096)});
    w.finish();
    const RunData run = store.read(w.id());
    const ModelProvenance m2 = read_model_provenance(run);
    EXPECT_EQ(m2.path, m.path);
    EXPECT_EQ(m2.architecture, m.architecture);
    ASSERT_EQ(m2.files.size(), m.files.size());
    for (std::size_t i = 0; i < m.files.size(); ++i) {
        EXPECT_EQ(m2.files[i].path, m.files[i].path);
        EXPECT_EQ(m2.files[i].bytes, m.files[i].bytes);
        EXPECT_EQ(m2.files[i].sha256, m.files[i].sha256);
    }
    const auto data = read_data_provenance(run);
    ASSERT_EQ(data.size(), 2u);
    EXPECT_EQ(data[0].role, "eval");
    EXPECT_EQ(data[0].file.path, text);
    EXPECT_EQ(data[0].file.sha256, kValTextSha);
    EXPECT_EQ(data[0].tokens, 39780);
    EXPECT_EQ(data[0].protocol, d.protocol);
    EXPECT_EQ(data[1].role, "calib");
    EXPECT_EQ(data[1].protocol, "");
    EXPECT_EQ(run.summary.info.quench_version, std::string(quench_version()));  // from build_info
    EXPECT_EQ(run.summary.info.git_hash, std::string(quench_git_hash()));
    EXPECT_FALSE(run.summary.info.git_hash.empty());
    EXPECT_EQ(run.summary.info.seed, 7u);
}

TEST(RunRecords, QuantizeResultAndTensorsRoundTrip) {
    RecordsFixture f;
    const auto layers = f.model->layers().select_glob("model.layers.0.*");
    const QuantizeResult r = quantize_model_layers(*f.model, uniform_plan(layers, CodecSpec::parse("rtn:b=3,g=32")),
                                                   {}, QuantizeOptions());
    ASSERT_EQ(r.layers.size(), layers.size());
    ScratchDir dir;
    const RunStore store = new_store(dir);
    RunWriter w = store.begin_run(info());
    write_quantize_result(w, r, true);
    w.finish();
    const RunData run = store.read(w.id());
    const auto back = read_layer_results(run);
    ASSERT_EQ(back.size(), r.layers.size());
    for (std::size_t i = 0; i < back.size(); ++i) {
        const LayerResult& a = r.layers[i];
        const LayerResult& b = back[i];
        EXPECT_EQ(b.layer, a.layer);
        EXPECT_EQ(b.name, a.name);
        EXPECT_EQ(b.spec, a.spec);
        EXPECT_EQ(b.metrics.weight_mse, a.metrics.weight_mse);
        EXPECT_EQ(b.metrics.rel_fro_error, a.metrics.rel_fro_error);
        EXPECT_EQ(b.metrics.sqnr_db, a.metrics.sqnr_db);
        EXPECT_EQ(b.metrics.output_rel_error, -1.0);  // no calibration text
        EXPECT_EQ(b.metrics.code_bits_per_weight, 3.0);
        EXPECT_EQ(b.metrics.total_bits_per_weight, a.metrics.total_bits_per_weight);
        EXPECT_EQ(b.metrics.seconds, a.metrics.seconds);
        EXPECT_EQ(b.transform, "");  // RTN has no transform
    }
    EXPECT_EQ(std::get<double>(run.table("layers").attrs.at("total_bits_per_weight")), r.total_bits_per_weight());
    EXPECT_EQ(run.table("layers").column("sqnr_db").units, "dB");
    // The stored parts dequantize to exactly the weight the model now uses.
    ASSERT_EQ(run.tensors.size(), layers.size());
    for (const auto& l : r.layers) {
        const QuantizedTensor q = from_stored(store.read_tensor(w.id(), l.name));
        const QuantizedTensor& orig = r.tensors.at(l.layer);
        ASSERT_EQ(q.parts.size(), orig.parts.size());
        for (std::size_t i = 0; i < q.parts.size(); ++i) {
            EXPECT_EQ(q.parts[i].data.scalar_type(), orig.parts[i].data.scalar_type()) << l.name;
            EXPECT_TRUE(torch::equal(q.parts[i].data, orig.parts[i].data)) << l.name << " " << q.parts[i].name;
            EXPECT_EQ(q.parts[i].bits, orig.parts[i].bits);
            EXPECT_EQ(q.parts[i].role, orig.parts[i].role);
        }
        EXPECT_EQ(q.total_bits_per_weight(), l.metrics.total_bits_per_weight);
        EXPECT_TRUE(torch::equal(make_codec(q.spec)->dequantize(q), f.model->weight(l.layer))) << l.name;
    }
}

TEST(RunRecords, KlAndPerplexityReportsRoundTrip) {
    RecordsFixture f;
    const auto layers = f.model->layers().select_glob("model.layers.*.mlp.*");
    quantize_model_layers(*f.model, uniform_plan(layers, CodecSpec::parse("rtn:b=2,g=32")), {}, QuantizeOptions());
    EvalOptions o;
    o.ctx = 128;
    const KlReport kl = evaluate_kl({f.model.get(), LlamaModel::Weights::Original}, {f.model.get()}, f.eval, o,
                                    f.tok->bos_id());
    const PerplexityResult ppl = evaluate_perplexity({f.model.get()}, f.eval, o, f.tok->bos_id());
    ASSERT_GT(kl.per_token_kl.size(), 500u);
    ASSERT_GT(kl.kl_mean, 0.0);

    ScratchDir dir;
    const RunStore store = new_store(dir);
    RunWriter w = store.begin_run(current_run_info("eval", "quench-cli eval"));
    write_kl_report(w, kl);
    KlReport no_vector = kl;
    no_vector.per_token_kl.clear();
    write_kl_report(w, no_vector, "kl_summary");
    write_perplexity(w, ppl);
    w.finish();
    const RunData run = store.read(w.id());

    const KlReport k = read_kl_report(run);
    EXPECT_EQ(k.kl_mean, kl.kl_mean);
    EXPECT_EQ(k.kl_stderr, kl.kl_stderr);
    EXPECT_EQ(k.kl_median, kl.kl_median);
    EXPECT_EQ(k.kl_p90, kl.kl_p90);
    EXPECT_EQ(k.kl_p99, kl.kl_p99);
    EXPECT_EQ(k.kl_p999, kl.kl_p999);
    EXPECT_EQ(k.kl_max, kl.kl_max);
    EXPECT_EQ(k.top1_agreement, kl.top1_agreement);
    EXPECT_EQ(k.rms_delta_p, kl.rms_delta_p);
    EXPECT_EQ(k.ppl_ref, kl.ppl_ref);
    EXPECT_EQ(k.ppl_test, kl.ppl_test);
    EXPECT_EQ(k.ppl_ratio, kl.ppl_ratio);
    EXPECT_EQ(k.first_scored_token, kl.first_scored_token);
    EXPECT_EQ(k.seconds, kl.seconds);
    EXPECT_EQ(k.protocol.describe(), kl.protocol.describe());
    EXPECT_EQ(k.per_token_kl, kl.per_token_kl);
    EXPECT_EQ(std::get<std::string>(run.array("kl_per_token").attrs.at("units")), "nats");
    EXPECT_TRUE(read_kl_report(run, "kl_summary").per_token_kl.empty());
    EXPECT_FALSE(run.has_array("kl_summary_per_token"));

    const PerplexityResult p = read_perplexity(run);
    EXPECT_EQ(p.perplexity, ppl.perplexity);
    EXPECT_EQ(p.nll_mean, ppl.nll_mean);
    EXPECT_EQ(p.seconds, ppl.seconds);
    EXPECT_EQ(p.tokens_per_second, ppl.tokens_per_second);
    EXPECT_EQ(p.protocol.describe(), ppl.protocol.describe());
    EXPECT_EQ(p.protocol.ctx, 128);
    // The KL report's test-side perplexity and the separate perplexity run agree: same model, same windows.
    EXPECT_NEAR(k.ppl_test, p.perplexity, 1e-9 * p.perplexity);

    const std::string msg = error_of([&] { read_kl_report(run, "perplexity"); });
    EXPECT_TRUE(contains(msg, "table 'perplexity'") && contains(msg, "no column 'kl_mean'")) << msg;
}

TEST(RunRecords, TensorsWithUnknownDtypesOrRolesAreRefused) {
    QuantizedTensor q;
    q.spec = CodecSpec::parse("rtn:b=4,g=32");
    q.rows = 1;
    q.cols = 32;
    q.parts.push_back({"codes", PartRole::Codes, torch::zeros({16}, torch::kBool), 128, false});
    std::string msg = error_of([&] { to_stored(q); });
    EXPECT_TRUE(contains(msg, "part 'codes'") && contains(msg, "cannot be stored")) << msg;
    q.parts[0].data = torch::zeros({16}, torch::kUInt8);
    StoredTensor s = to_stored(q);
    s.parts[0].role = "mystery";
    msg = error_of([&] { from_stored(s); });
    EXPECT_TRUE(contains(msg, "part 'codes'") && contains(msg, "unknown role 'mystery'")) << msg;
    s.parts[0].role = "codes";
    s.parts[0].dtype = "complex64";
    msg = error_of([&] { from_stored(s); });
    EXPECT_TRUE(contains(msg, "part 'codes'") && contains(msg, "unknown dtype 'complex64'")) << msg;
}

TEST(RunRecords, RunRecordedCommitsFailsOrCancelsAndRethrows) {
    ScratchDir dir;
    const std::string project = dir.file("study.h5");
    std::string begun;
    const std::string id = run_recorded(
        project, current_run_info("quantize", "test"), [](RunWriter* run) { run->set_attr("n", int64_t{3}); },
        [&](const std::string& i) { begun = i; });
    EXPECT_EQ(id, "run-0001");
    EXPECT_EQ(begun, id);
    EXPECT_THROW(run_recorded(project, current_run_info("quantize", "test"),
                              [](RunWriter*) { throw Error("calibration text unreadable"); }),
                 Error);
    EXPECT_THROW(run_recorded(project, current_run_info("qat", "test"), [](RunWriter*) { throw Cancelled(); }),
                 Cancelled);
    const RunStore store = RunStore::open(project);
    const auto runs = store.runs();
    ASSERT_EQ(runs.size(), 3u);
    EXPECT_EQ(runs[0].status, RunStatus::Complete);
    EXPECT_EQ(runs[1].status, RunStatus::Failed);
    EXPECT_NE(runs[1].message.find("calibration text unreadable"), std::string::npos) << runs[1].message;
    EXPECT_EQ(runs[2].status, RunStatus::Cancelled);
    // Without a project the job runs with no writer and nothing is written.
    bool ran = false;
    EXPECT_EQ(run_recorded("", current_run_info("quantize", "test"), [&](RunWriter* run) { ran = run == nullptr; }), "");
    EXPECT_TRUE(ran);
}
