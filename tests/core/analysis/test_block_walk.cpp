// The block-major walk (core/analysis/block_walk.h) on the real model: running one block over every window
// before the next gives exactly the logits and the layer statistics of whole forward passes, for short and
// long windows, with the hidden states in memory or spilled to a scratch file (which leaves no name behind);
// misuse is named.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "analysis/block_walk.h"
#include "analysis/layer_capture.h"
#include "analysis/text_data.h"
#include "io/model_loading.h"
#include "model/tokenizer.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

std::vector<int32_t> eval_tokens(const LlamaModel& m, int64_t n) {
    const auto tok = load_tokenizer(m.dir());
    return tokenize_text_file(*tok, test::eval_text(), true, n);
}

at::Tensor windows_of(const std::vector<int32_t>& ids, int64_t ctx) {
    const int64_t n = static_cast<int64_t>(ids.size()) / ctx;
    return torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + n * ctx)).view({n, ctx});
}

}  // namespace

TEST(BlockWalk, BlockMajorLogitsEqualWholeForwardsWithAndWithoutSpilling) {
    test::ScratchDir dir;
    auto m = load_model(test::real_model_dir());
    for (const int64_t ctx : {64, 512, 2048}) {
        const auto ids = eval_tokens(*m, 3 * ctx);
        const at::Tensor windows = windows_of(ids, ctx);
        ASSERT_EQ(windows.size(0), 3);
        CaptureOptions o;
        o.ctx = ctx;
        o.batch = 2;  // batches of 2 and 1 windows
        for (const int64_t cap : {HiddenStates::kDefaultMemoryCap, int64_t(0)}) {
            SCOPED_TRACE("ctx " + std::to_string(ctx) + ", memory cap " + std::to_string(cap));
            BlockWalk walk(*m, ids, o, cap, dir.path().string());
            for (int b = 0; b < m->num_blocks(); ++b) walk.step({}, LlamaModel::Weights::Current, true);
            EXPECT_EQ(walk.position(), m->num_blocks());
            EXPECT_EQ(walk.spilled_bytes() > 0, cap == 0);
            EXPECT_TRUE(test::entries(dir.path().string()).empty());
            ASSERT_EQ(walk.states().size(), 2u);
            for (int64_t i = 0; i < 2; ++i) {
                const at::Tensor whole = m->forward(windows.narrow(0, 2 * i, i == 0 ? 2 : 1));
                EXPECT_TRUE(torch::equal(m->head_logits(walk.states().get(static_cast<std::size_t>(i))), whole))
                    << "batch " << i;
            }
        }
    }
    EXPECT_TRUE(test::entries(dir.path().string()).empty());
}

TEST(BlockWalk, StatisticsEqualAWholeModelCapture) {
    auto m = load_model(test::real_model_dir());
    const auto ids = eval_tokens(*m, 1024);
    CaptureOptions o;
    o.ctx = 128;
    o.batch = 3;
    o.sample_rows = 100;
    std::vector<std::size_t> all;
    for (std::size_t l = 0; l < m->layers().size(); ++l) all.push_back(l);
    const auto whole = capture_layer_inputs(*m, all, ids, o);

    BlockWalk walk(*m, ids, o, 0);
    std::map<std::size_t, LayerInputStats> walked;
    for (int pos = 0; pos <= m->num_blocks(); ++pos) {
        std::vector<std::size_t> here;
        for (std::size_t l : all)
            if ((pos < m->num_blocks() && m->layers().at(l).block == pos) || (pos == m->num_blocks() && m->layers().at(l).block < 0))
                here.push_back(l);
        for (auto& [l, s] : walk.step(here, LlamaModel::Weights::Original, pos < m->num_blocks())) walked[l] = s;
    }
    ASSERT_EQ(walked.size(), all.size());
    for (std::size_t l : all) {
        SCOPED_TRACE(m->layers().at(l).name);
        EXPECT_EQ(walked.at(l).rows, whole.at(l).rows);
        EXPECT_TRUE(torch::equal(walked.at(l).xtx, whole.at(l).xtx));
        EXPECT_TRUE(torch::equal(walked.at(l).abs_mean, whole.at(l).abs_mean));
        EXPECT_TRUE(torch::equal(walked.at(l).sample, whole.at(l).sample));
    }
}

TEST(BlockWalk, MisuseIsNamed) {
    auto m = load_model(test::real_model_dir());
    const auto ids = eval_tokens(*m, 256);
    CaptureOptions o;
    o.ctx = 128;
    BlockWalk walk(*m, ids, o);
    const std::size_t in_block_1 = m->layers().select_glob("model.layers.1.mlp.up_proj").at(0);
    std::string e = test::error_of([&] { walk.step({in_block_1}, LlamaModel::Weights::Current, false); });
    EXPECT_TRUE(test::contains_all(e, {"model.layers.1.mlp.up_proj", "block 0"})) << e;
    for (int b = 0; b < m->num_blocks(); ++b) walk.step({}, LlamaModel::Weights::Current, true);
    e = test::error_of([&] { walk.step({}, LlamaModel::Weights::Current, true); });
    EXPECT_TRUE(test::contains(e, "no block after the last")) << e;
    e = test::error_of([&] { BlockWalk short_text(*m, std::vector<int32_t>(100, 5), o); });
    EXPECT_TRUE(test::contains_all(e, {"100 tokens", "fewer than ctx 128"})) << e;
}
