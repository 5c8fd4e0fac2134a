// quench-cli end to end: JSON output parses and carries the real numbers, failures exit non-zero with a
// single-line error naming the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/cli.h"
#include "support/test_paths.h"

namespace {

quench::test::CliResult cli(const std::string& args) { return quench::test::run_cli(args); }

using quench::test::eval_text;
using quench::test::real_model_dir;

}  // namespace

TEST(Cli, InfoJsonDescribesTheRealModel) {
    auto r = cli("info " + real_model_dir() + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
    EXPECT_EQ(j["params"], 656000);
    EXPECT_EQ(j["layers"].size(), 15u);
    EXPECT_EQ(j["tokenizer"]["vocab_size"], 2048);
}

TEST(Cli, EvalJsonAndTable) {
    auto r = cli("eval " + real_model_dir() + " --text " + eval_text() + " --ctx 256 --max-tokens 3000 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    const double ppl = j["result"]["perplexity"];
    EXPECT_GT(ppl, 10.0);
    EXPECT_LT(ppl, 80.0);
    EXPECT_EQ(j["result"]["protocol"]["ctx"], 256);
    auto t = cli("eval " + real_model_dir() + " --text " + eval_text() + " --ctx 256 --max-tokens 3000 -q");
    ASSERT_EQ(t.code, 0);
    EXPECT_NE(t.out.find("perplexity"), std::string::npos);
}

TEST(Cli, KlAgainstItselfIsZero) {
    auto r = cli("eval " + real_model_dir() + " --ref " + real_model_dir() + " --text " + eval_text() +
                 " --ctx 128 --max-tokens 1000 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j["result"]["kl_mean"].get<double>(), 0.0, 1e-7);
    EXPECT_EQ(j["result"]["top1_agreement"], 1.0);
}

TEST(Cli, SynthThenInfo) {
    quench::test::ScratchDir dir;
    auto s = cli("synth --shape smollm2-135m --layers 1 --out " + dir.file("m") + " --json");
    ASSERT_EQ(s.code, 0) << s.err;
    auto i = cli("info " + dir.file("m") + " --json");
    ASSERT_EQ(i.code, 0) << i.err;
    EXPECT_EQ(nlohmann::json::parse(i.out)["hidden_size"], 576);
}

TEST(Cli, FailuresAreOneLineErrorsNamingTheFile) {
    quench::test::ScratchDir dir;
    auto missing = cli("info " + dir.file("nothing"));
    EXPECT_NE(missing.code, 0);
    EXPECT_NE(missing.err.find(dir.file("nothing")), std::string::npos) << missing.err;
    EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
    { std::ofstream(dir.file("empty.txt")); }
    auto empty = cli("eval " + real_model_dir() + " --text " + dir.file("empty.txt"));
    EXPECT_NE(empty.code, 0);
    EXPECT_NE(empty.err.find("empty.txt: text is empty"), std::string::npos) << empty.err;
    auto unknown = cli("synth --shape gpt-9 --out " + dir.file("x"));
    EXPECT_NE(unknown.code, 0);
    EXPECT_NE(unknown.err.find("gpt-9"), std::string::npos);
}
