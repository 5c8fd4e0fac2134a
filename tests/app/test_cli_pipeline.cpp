// The README's pipeline through quench-cli: quantize into a project file, list and show the run, export it
// packed, as HF FP16 and as GGUF, and evaluate the exports: the packed model's perplexity is the quantized
// model's.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/cli.h"
#include "support/cli_json.h"
#include "support/test_paths.h"

namespace {

using quench::test::eval_text;
using quench::test::json_of;
using quench::test::real_model_dir;
using quench::test::run_cli;
using quench::test::train_text;

const std::string kEvalArgs = " --ctx 128 --eval-tokens 2000";

double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

}  // namespace

TEST(CliPipeline, QuantizeRecordExportReload) {
    quench::test::ScratchDir dir;
    const std::string study = dir.file("study.h5");
    const auto q = json_of(run_cli("quantize " + real_model_dir() + " --codec rtn:b=4,g=64 --calib " + train_text() +
                                   " --calib-tokens 2000 --eval " + eval_text() + kEvalArgs + " --out " + study +
                                   " --json"));
    const double ppl_quantized = q["kl"]["ppl_test"];
    ASSERT_EQ(q["layers"].size(), 14u);

    const auto runs = json_of(run_cli("runs " + study + " --json"));
    ASSERT_EQ(runs["runs"].size(), 1u);
    EXPECT_EQ(runs["runs"][0]["id"], "run-0001");
    EXPECT_EQ(runs["runs"][0]["status"], "complete");
    EXPECT_EQ(runs["runs"][0]["kind"], "quantize");
    EXPECT_NE(runs["runs"][0]["command_line"].get<std::string>().find("--codec rtn:b=4,g=64"), std::string::npos);

    const auto show = json_of(run_cli("show " + study + " --json"));
    EXPECT_EQ(show["attrs"]["codec"], q["codec"]);
    EXPECT_EQ(show["tensors"].size(), 14u);
    const auto& layers = show["tables"]["layers"];
    ASSERT_FALSE(layers.empty());
    const auto& first = *layers.begin();  // any column: one value per quantized layer
    EXPECT_EQ(first.size(), 14u);
    EXPECT_NEAR(show["tables"]["kl"]["ppl_test"][0].get<double>(), ppl_quantized, 1e-9 * ppl_quantized);
    const auto shown = run_cli("show " + study);
    ASSERT_EQ(shown.code, 0) << shown.err;
    EXPECT_NE(shown.out.find("model.layers.1.mlp.down_proj"), std::string::npos) << shown.out;

    const auto packed = json_of(run_cli("export " + study + " --format packed --out " + dir.file("packed") + " --json"));
    EXPECT_EQ(packed["quantized_tensors"], 14);
    EXPECT_NEAR(packed["total_bpw"].get<double>(), q["total_bpw"].get<double>(), 1e-12);
    const auto reloaded = json_of(
        run_cli("eval " + dir.file("packed") + " --text " + eval_text() + " --ctx 128 --max-tokens 2000 --json"));
    EXPECT_LT(rel(reloaded["result"]["perplexity"], ppl_quantized), 1e-6);
    // Through the packed kernels, next to the same checkpoint dequantized and run dense in the same process.
    const auto kernels = json_of(run_cli("eval --packed " + dir.file("packed") + " --text " + eval_text() +
                                         " --ctx 128 --max-tokens 2000 --json"));
    EXPECT_EQ(kernels["packed_layers"], 14);
    EXPECT_LT(rel(kernels["dense_fp32"]["perplexity"], ppl_quantized), 1e-6);
    EXPECT_LT(rel(kernels["kernels"]["perplexity"], ppl_quantized), 1e-3);
    EXPECT_NEAR(kernels["perplexity_rel_diff"].get<double>(),
                rel(kernels["kernels"]["perplexity"], kernels["dense_fp32"]["perplexity"]), 1e-12);
    EXPECT_GT(kernels["kernels"]["tokens_per_second"].get<double>(), 0.0);
    EXPECT_NEAR(kernels["speedup"].get<double>(),
                kernels["kernels"]["tokens_per_second"].get<double>() /
                    kernels["dense_fp32"]["tokens_per_second"].get<double>(), 1e-9);
    const auto table = run_cli("eval --packed " + dir.file("packed") + " --text " + eval_text() +
                               " --ctx 128 --max-tokens 500");
    ASSERT_EQ(table.code, 0) << table.err;
    EXPECT_NE(table.out.find("packed kernels"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("14 packed layers"), std::string::npos) << table.out;
    // With int8 activations every RTN layer runs its int8 kernel: within 1e-2 of the dequantized model, and
    // not the fp32 kernels' number.
    const auto int8 = json_of(run_cli("eval --packed " + dir.file("packed") + " --text " + eval_text() +
                                      " --ctx 128 --max-tokens 2000 --int8-activations --json"));
    EXPECT_EQ(int8["activations"], "int8");
    EXPECT_EQ(int8["int8_layers"], 14);
    EXPECT_EQ(kernels["activations"], "fp32");
    EXPECT_EQ(kernels["int8_layers"], 0);
    EXPECT_LT(rel(int8["kernels"]["perplexity"], int8["dense_fp32"]["perplexity"]), 1e-2);
    EXPECT_NE(int8["kernels"]["perplexity"], kernels["kernels"]["perplexity"]);
    const auto int8_table = run_cli("eval --packed " + dir.file("packed") + " --text " + eval_text() +
                                    " --ctx 128 --max-tokens 300 --int8-activations");
    ASSERT_EQ(int8_table.code, 0) << int8_table.err;
    EXPECT_NE(int8_table.out.find("packed kernels, int8 activations"), std::string::npos) << int8_table.out;
    EXPECT_NE(int8_table.out.find("14 of the layers with int8 activations"), std::string::npos) << int8_table.out;

    json_of(run_cli("export " + study + ":run-0001 --format hf --out " + dir.file("hf") + " --json"));
    const auto hf = json_of(
        run_cli("eval " + dir.file("hf") + " --text " + eval_text() + " --ctx 128 --max-tokens 2000 --json"));
    EXPECT_LT(rel(hf["result"]["perplexity"], ppl_quantized), 1e-3);  // FP16 rounding of the weights

    // GGUF: each layer gets the ggml type nearest its codec's 4.25 bits (Q4_K); rows of 128 or 384 are not
    // a multiple of 256, so every one falls back as llama.cpp's quantizer would, and says so.
    const auto gguf = json_of(run_cli("export " + study + " --format gguf --out " + dir.file("m.gguf") + " --json"));
    ASSERT_EQ(gguf["fallbacks"].size(), 14u);
    for (const auto& f : gguf["fallbacks"]) {
        EXPECT_EQ(f["requested"], "Q4_K");
        EXPECT_EQ(f["used"], "Q5_0");
    }
    EXPECT_EQ(gguf["tokenizer"], "llama");  // BPE over metaspace pieces, as SentencePiece writes it

    // A second run joins the first without touching it.
    json_of(
        run_cli("quantize " + real_model_dir() + " --codec paretoq:b=2 --layers '*mlp*' --out " + study + " --json"));
    const auto both = json_of(run_cli("runs " + study + " --json"));
    ASSERT_EQ(both["runs"].size(), 2u);
    EXPECT_EQ(json_of(run_cli("show " + study + " run-0001 --json"))["tables"], show["tables"]);
    EXPECT_EQ(json_of(run_cli("show " + study + " --json"))["tensors"].size(), 6u);
}

TEST(CliPipeline, FailuresAreRecordedAndNamed) {
    quench::test::ScratchDir dir;
    const std::string study = dir.file("study.h5");
    // The run starts before the calibration file is read, so the failure is recorded with its message.
    const auto bad = run_cli("quantize " + real_model_dir() + " --codec rtn:b=4,g=64 --calib " + dir.file("nope.txt") +
                             " --out " + study);
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("nope.txt"), std::string::npos) << bad.err;
    const auto runs = json_of(run_cli("runs " + study + " --json"));
    ASSERT_EQ(runs["runs"].size(), 1u);
    EXPECT_EQ(runs["runs"][0]["status"], "failed");
    EXPECT_NE(runs["runs"][0]["message"].get<std::string>().find("nope.txt"), std::string::npos);

    const auto no_tensors = run_cli("export " + study + " --format packed --out " + dir.file("p"));
    EXPECT_NE(no_tensors.code, 0);
    EXPECT_NE(no_tensors.err.find("no complete run with stored quantized tensors"), std::string::npos) << no_tensors.err;
    const auto plain = run_cli("export " + real_model_dir() + " --format packed --out " + dir.file("p"));
    EXPECT_NE(plain.err.find("no quantized tensors to pack"), std::string::npos) << plain.err;
    const auto unpacked = run_cli("eval --packed " + real_model_dir() + " --text " + eval_text());
    EXPECT_NE(unpacked.code, 0);
    EXPECT_NE(unpacked.err.find(real_model_dir() + "/config.json"), std::string::npos) << unpacked.err;
    EXPECT_NE(unpacked.err.find("not a packed Quench checkpoint"), std::string::npos) << unpacked.err;
    const auto both_models = run_cli("eval " + real_model_dir() + " --packed " + real_model_dir() + " --text " +
                                     eval_text());
    EXPECT_NE(both_models.code, 0);
    EXPECT_NE(both_models.err.find("excludes"), std::string::npos) << both_models.err;
    const auto int8_alone = run_cli("eval " + real_model_dir() + " --text " + eval_text() + " --int8-activations");
    EXPECT_NE(int8_alone.code, 0);
    EXPECT_NE(int8_alone.err.find("--packed"), std::string::npos) << int8_alone.err;
    const auto missing = run_cli("show " + study + " run-0042");
    EXPECT_NE(missing.code, 0);
    EXPECT_NE(missing.err.find("run-0042"), std::string::npos) << missing.err;
    const auto not_h5 = run_cli("runs " + eval_text());
    EXPECT_NE(not_h5.code, 0);
    EXPECT_NE(not_h5.err.find(eval_text()), std::string::npos) << not_h5.err;
    // An existing target is refused rather than overwritten.
    json_of(run_cli("export " + real_model_dir() + " --format hf --out " + dir.file("hf") + " --json"));
    const auto again = run_cli("export " + real_model_dir() + " --format hf --out " + dir.file("hf"));
    EXPECT_NE(again.code, 0);
    EXPECT_NE(again.err.find(dir.file("hf")), std::string::npos) << again.err;
}
