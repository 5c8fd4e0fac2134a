// sensitivity -> allocate -> apply end to end through the built quench-cli on the real model: the allocation
// meets the budget, apply's measured bits equal the allocation's, measurements files are reused.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/cli.h"
#include "support/test_paths.h"

using quench::test::eval_text;
using quench::test::real_model_dir;
using quench::test::run_cli;
using quench::test::train_text;

namespace {

std::string sens_args(const std::string& measurements) {
    return "sensitivity " + real_model_dir() + " --layers 'model.layers.*' --calib " + train_text() +
           " --calib-tokens 2048 --kl-tokens 512 --ctx 128 --sample-rows 128 --measurements " + measurements;
}

}  // namespace

TEST(CliAlloc, SensitivityAllocateApplyEndToEnd) {
    quench::test::ScratchDir dir;
    const std::string mfile = dir.file("m.json");
    // 1. Two candidates, table output.
    auto r = run_cli(sens_args(mfile) + " --candidates 'rtn:b=2,g=64;rtn:b=4,g=64' -q");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("model.layers.1.mlp.down_proj"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("28 quantized"), std::string::npos) << r.out;  // 14 layers x 2
    ASSERT_TRUE(std::filesystem::exists(mfile));
    // 2. Extended with a third candidate given as --candidate: only the new pairs are measured.
    r = run_cli(sens_args(mfile) + " --candidates 'rtn:b=2,g=64;rtn:b=4,g=64' --candidate rtn:b=3,g=64 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["quantize_calls"], 14);
    EXPECT_EQ(j["reused"], 28);
    EXPECT_EQ(j["points"].size(), 42u);
    for (const auto& p : j["points"]) EXPECT_GE(p["kl"].get<double>(), 0.0);

    // 3. Allocate at 3.2 bits per weight.
    const std::string afile = dir.file("alloc.json");
    r = run_cli("allocate --measurements " + mfile + " --budget 3.2bpw --exact --save " + afile + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    const int64_t total_bits = j["total_bits"], budget_bits = j["budget_bits"], weights = j["total_weights"];
    EXPECT_LE(total_bits, budget_bits);
    EXPECT_LE(double(total_bits) / double(weights), 3.2);
    EXPECT_GT(double(total_bits) / double(weights), 2.5);  // more than the fewest bits: it spends the budget
    EXPECT_EQ(j["layers"].size(), 14u);
    double predicted = 0;
    for (const auto& l : j["layers"]) predicted += l["predicted_kl"].get<double>();
    EXPECT_NEAR(j["predicted_kl"].get<double>(), predicted, 1e-12);
    ASSERT_TRUE(std::filesystem::exists(afile));

    // Table output and a too-small budget.
    r = run_cli("allocate --measurements " + mfile + " --budget 3.2bpw");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("predicted KL"), std::string::npos);
    r = run_cli("allocate --measurements " + mfile + " --budget 2bpw");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("allocation: "), std::string::npos) << r.err;
    r = run_cli("allocate --measurements " + mfile + " --budget 3.2parsecs");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("--budget"), std::string::npos) << r.err;
    // A pin and a tie are honoured.
    r = run_cli("allocate --measurements " + mfile +
                " --budget 3.2bpw --pin model.layers.0.mlp.up_proj=rtn:b=4,g=64 --tie 'model.layers.*.self_attn.[qkv]_proj' --json");
    ASSERT_EQ(r.code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    std::map<std::string, std::string> spec_of;
    for (const auto& l : j["layers"]) spec_of[l["layer"]] = l["spec"];
    EXPECT_EQ(spec_of["model.layers.0.mlp.up_proj"].rfind("rtn:b=4,g=64", 0), 0u);
    EXPECT_EQ(spec_of["model.layers.1.self_attn.q_proj"], spec_of["model.layers.1.self_attn.k_proj"]);
    EXPECT_EQ(spec_of["model.layers.1.self_attn.q_proj"], spec_of["model.layers.1.self_attn.v_proj"]);

    // 4. Apply: the measured bits equal the allocation's, layer by layer and in total.
    r = run_cli("apply " + real_model_dir() + " --allocation " + afile + " --calib " + train_text() +
                " --calib-tokens 2048 --eval " + eval_text() + " --eval-tokens 1024 --ctx 128 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["measured_bits"].get<int64_t>(), total_bits);
    EXPECT_EQ(j["allocated_bits"].get<int64_t>(), total_bits);
    for (const auto& l : j["layers"]) EXPECT_DOUBLE_EQ(l["total_bpw"].get<double>(), l["allocated_bpw"].get<double>());
    EXPECT_GT(j["kl"]["kl_mean"].get<double>(), 0.0);
    // Table output and an --out project file.
    r = run_cli("apply " + real_model_dir() + " --allocation " + afile + " --calib " + train_text() +
                " --calib-tokens 2048 --eval " + eval_text() + " --eval-tokens 1024 --ctx 128 -q --out " +
                dir.file("p.h5"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("measured"), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(dir.file("p.h5")));
}

TEST(CliAlloc, BadInputsAreOneLineErrors) {
    quench::test::ScratchDir dir;
    auto r = run_cli("allocate --measurements " + dir.file("none.json") + " --budget 3bpw");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("none.json"), std::string::npos) << r.err;
    r = run_cli("sensitivity " + real_model_dir() + " --calib " + train_text() + " --candidates 'rtn:b=9'");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("rtn:b=9"), std::string::npos) << r.err;
    r = run_cli("apply " + real_model_dir() + " --allocation " + dir.file("none.json"));
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("none.json"), std::string::npos) << r.err;
}

TEST(CliAlloc, ProxyRunIsRecordedAndAllocatable) {
    quench::test::ScratchDir dir;
    const std::string mfile = dir.file("m.json"), h5 = dir.file("p.h5");
    auto r = run_cli("sensitivity " + real_model_dir() + " --layers 'model.layers.0.mlp.*' --calib " + train_text() +
                     " --calib-tokens 1024 --kl-tokens 256 --ctx 128 --candidates 'rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64'"
                     " --proxy --measurements " + mfile + " --out " + h5 + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["quantize_calls"], 9);
    EXPECT_EQ(j["kl_evals"], 6);  // b=3 (median bits) and b=2 (fewest) on three layers
    ASSERT_TRUE(j.contains("proxy_spearman"));
    EXPECT_GE(j["proxy_spearman"].get<double>(), -1.0);
    EXPECT_LE(j["proxy_spearman"].get<double>(), 1.0);
    for (const auto& p : j["points"]) EXPECT_GE(p["proxy_kl"].get<double>(), 0.0);
    r = run_cli("runs " + h5);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("sensitivity"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("complete"), std::string::npos) << r.out;
    // Proxy costs reach 4.3 bpw candidates; measured-only costs stop at b=3.
    r = run_cli("allocate --measurements " + mfile + " --budget 5bpw --cost proxy --json");
    ASSERT_EQ(r.code, 0) << r.err;
    for (const auto& l : nlohmann::json::parse(r.out)["layers"]) EXPECT_EQ(l["spec"].get<std::string>().rfind("rtn:b=4", 0), 0u);
    r = run_cli("allocate --measurements " + mfile + " --budget 5bpw --cost kl --json");
    ASSERT_EQ(r.code, 0) << r.err;
    for (const auto& l : nlohmann::json::parse(r.out)["layers"]) EXPECT_EQ(l["spec"].get<std::string>().rfind("rtn:b=3", 0), 0u);
}

// The project-file path: sensitivity --out, allocate from that run with --out, apply from the allocate run,
// and a sweep; wrong run kinds are refused by name.
TEST(CliAlloc, ProjectFileCarriesMeasurementsAllocationsAndSweeps) {
    quench::test::ScratchDir dir;
    const std::string h5 = dir.file("study.h5");
    auto r = run_cli("sensitivity " + real_model_dir() + " --layers 'model.layers.1.mlp.*' --calib " + train_text() +
                     " --calib-tokens 1024 --kl-tokens 256 --ctx 128 --sample-rows 64"
                     " --candidates 'rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64' -q --out " + h5);
    ASSERT_EQ(r.code, 0) << r.err;
    r = run_cli("allocate --measurements " + h5 + " --budget 3bpw --out " + h5 + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto alloc = nlohmann::json::parse(r.out);
    EXPECT_LE(alloc["bits_per_weight"].get<double>(), 3.0);
    // Extending from the run: nothing is measured again.
    r = run_cli("sensitivity " + real_model_dir() + " --layers 'model.layers.1.mlp.*' --calib " + train_text() +
                " --calib-tokens 1024 --kl-tokens 256 --ctx 128 --sample-rows 64 --candidates 'rtn:b=2,g=64;rtn:b=4,g=64'"
                " --measurements " + h5 + ":run-0001 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["quantize_calls"], 0);
    EXPECT_EQ(nlohmann::json::parse(r.out)["reused"], 6);
    // apply reads the allocate run (run-0002): the measured bits are the allocated ones.
    r = run_cli("apply " + real_model_dir() + " --allocation " + h5 + " --calib " + train_text() +
                " --calib-tokens 1024 --ctx 128 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["measured_bits"], alloc["total_bits"]);
    r = run_cli("apply " + real_model_dir() + " --allocation " + h5 + ":run-0001 --ctx 128");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("run kind 'sensitivity', expected 'allocate'"), std::string::npos) << r.err;
    // A sweep of two budgets and every uniform setting, recorded.
    r = run_cli("sweep " + real_model_dir() + " --measurements " + h5 + " --budgets 2.5,3.5 --uniform all --calib " +
                train_text() + " --calib-tokens 1024 --eval " + eval_text() +
                " --eval-tokens 512 --ctx 128 --json --out " + h5);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto sw = nlohmann::json::parse(r.out);
    ASSERT_EQ(sw["entries"].size(), 5u);  // 2 budgets + 3 uniform settings
    EXPECT_EQ(sw["spearman_points"], 5);
    EXPECT_GT(sw["spearman"].get<double>(), 0.5);
    for (const auto& e : sw["entries"]) {
        if (!e["uniform"].get<bool>()) {
            EXPECT_LE(e["total_bpw"].get<double>(), e["budget_bpw"].get<double>());
        }
    }
    r = run_cli("show " + h5 + " run-0003");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("sweep"), std::string::npos) << r.out;
}
