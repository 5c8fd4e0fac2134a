// quench-cli qat on the real model: QAT lowers the KL of its own PTQ init on held-out text, the run is
// recorded with its loss and KL curves, and --resume continues a finished or killed run from its checkpoint.
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

const std::string kArgs = " --train " + train_text() + " --eval " + eval_text() +
                          " --eval-tokens 4000 --eval-ctx 128 --ctx 64 --batch 4 --lr 5e-4 --scale-lr 2e-3"
                          " --calib-tokens 2048 --threads 1";

}  // namespace

TEST(CliQat, EndToEndBeatsItsPtqInitAndIsRecorded) {
    quench::test::ScratchDir dir;
    const std::string study = dir.file("study.h5");
    const auto j = json_of(run_cli("qat " + real_model_dir() +
                                   " --codec paretoq:b=2 --mode e2e --kl-weight 1 --tokens 8000" + kArgs + " --out " +
                                   study + " --json"));
    EXPECT_EQ(j["steps"], 31);  // 8000 tokens in steps of 4 x 64
    EXPECT_EQ(j["tokens_used"], 31 * 256);
    EXPECT_EQ(j["layers"], 14);
    const double ptq = j["kl_ptq"]["kl_mean"], qat = j["kl"]["kl_mean"];
    EXPECT_LT(qat, 0.85 * ptq) << ptq << " -> " << qat;
    EXPECT_LT(j["kl"]["ppl_test"].get<double>(), j["kl_ptq"]["ppl_test"].get<double>());

    const auto show = json_of(run_cli("show " + study + " --json"));
    EXPECT_EQ(show["attrs"]["codec"], "paretoq:b=2");
    EXPECT_EQ(show["tensors"].size(), 14u);
    const auto& tables = show["tables"];
    ASSERT_TRUE(tables.contains("qat_loss")) << show.dump();
    EXPECT_EQ(tables["qat_loss"]["loss"].size(), 31u);
    ASSERT_TRUE(tables.contains("qat_kl"));
    EXPECT_GE(tables["qat_kl"]["kl"].size(), 2u);
    EXPECT_TRUE(tables.contains("kl_ptq"));
    EXPECT_TRUE(tables.contains("kl"));
}

TEST(CliQat, ResumeContinuesFromTheCheckpointAndRejectsBadModes) {
    quench::test::ScratchDir dir;
    const std::string ck = dir.file("ckpt");
    const std::string args = " --codec paretoq:b=3 --mode block --tokens 4096 --checkpoint-every 4 --resume " + ck;
    const auto first = json_of(run_cli("qat " + real_model_dir() + kArgs + args + " --json"));
    EXPECT_EQ(first["resumed_from"], 0);
    // A second run finds the finished checkpoint: no step is trained again and the result is the same.
    const auto again = json_of(run_cli("qat " + real_model_dir() + kArgs + args + " --json"));
    EXPECT_EQ(again["resumed_from"], first["steps"]);
    EXPECT_DOUBLE_EQ(again["final_loss"].get<double>(), first["final_loss"].get<double>());
    EXPECT_DOUBLE_EQ(again["kl"]["kl_mean"].get<double>(), first["kl"]["kl_mean"].get<double>());

    const auto bad = run_cli("qat " + real_model_dir() + kArgs + " --codec paretoq:b=2 --mode sideways");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("--mode 'sideways'"), std::string::npos) << bad.err;
    const auto rtn = run_cli("qat " + real_model_dir() + kArgs + " --codec rtn:b=4");
    EXPECT_NE(rtn.code, 0);
    EXPECT_NE(rtn.err.find("no QAT form"), std::string::npos) << rtn.err;
}
