// The KL probe (core/analysis/kl_probe.h) on the real model: a measurement resumed at the block of the
// changed layer equals evaluate_kl of the whole model against itself with that change, bit for bit, at every
// block and at lm_head, for non-overlapping, sliding and BOS-per-window windows, with the hidden states in
// memory or spilled; the unchanged model measures exactly 0; its scratch files leave no name behind.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "analysis/kl_probe.h"
#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/tokenizer.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/progress.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

struct Sample {
    std::unique_ptr<LlamaModel> model;
    std::vector<int32_t> tokens;
    int32_t bos = -1;
};

Sample sample(int64_t n) {
    Sample s;
    s.model = load_model(test::real_model_dir());
    const auto tok = load_tokenizer(s.model->dir());
    s.tokens = tokenize_text_file(*tok, test::eval_text(), true, n);
    s.bos = tok->bos_id();
    return s;
}

// The first layer of block b (lm_head for b == num_blocks), perturbed as a quantizer would.
std::size_t perturb_layer_at(LlamaModel& m, int b) {
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
        const int block = m.layers().at(l).block;
        if (block == b || (b == m.num_blocks() && block < 0)) {
            const at::Tensor w = m.original_weight(l);
            m.replace_weight(l, w + 0.05 * w.abs().mean() * torch::randn(w.sizes(), at::make_generator<at::CPUGeneratorImpl>(11 + b)));
            return l;
        }
    }
    ADD_FAILURE() << "no layer at position " << b;
    return 0;
}

}  // namespace

TEST(KlProbe, EveryBlockMeasuresExactlyWhatAWholeEvaluationDoes) {
    test::ScratchDir dir;
    Sample s = sample(1500);
    LlamaModel& m = *s.model;
    torch::manual_seed(7);
    struct Case {
        const char* name;
        EvalOptions o;
    };
    std::vector<Case> cases(3);
    cases[0] = {"non-overlapping", {}};
    cases[0].o.ctx = 256, cases[0].o.batch = 2;  // 5 windows of 256 and a short one: batches of 2, 2, 1, 1
    cases[1] = {"sliding", {}};
    cases[1].o.ctx = 256, cases[1].o.stride = 128, cases[1].o.batch = 3;
    cases[2] = {"bos per window", {}};
    cases[2].o.ctx = 200, cases[2].o.bos_per_window = true, cases[2].o.max_tokens = 900;
    for (const auto& c : cases)
        for (const int64_t cap : {HiddenStates::kDefaultMemoryCap, int64_t(0)}) {
            SCOPED_TRACE(std::string(c.name) + ", memory cap " + std::to_string(cap));
            KlProbe probe(m, s.tokens, c.o, s.bos, cap, dir.path().string());
            EXPECT_TRUE(test::entries(dir.path().string()).empty());
            for (int b = 0; b <= m.num_blocks(); ++b) {
                SCOPED_TRACE("position " + std::to_string(b));
                ASSERT_EQ(probe.position(), b);
                const KlReport same = probe.measure();
                EXPECT_EQ(same.kl_max, 0.0);
                EXPECT_EQ(same.top1_agreement, 1.0);
                const std::size_t layer = perturb_layer_at(m, b);
                const KlReport probed = probe.measure();
                const KlReport whole = evaluate_kl({&m, LlamaModel::Weights::Original}, {&m}, s.tokens, c.o, s.bos);
                m.restore_weight(layer);
                EXPECT_GT(probed.kl_mean, 1e-6);
                EXPECT_EQ(probed.kl_mean, whole.kl_mean);
                EXPECT_EQ(probed.kl_stderr, whole.kl_stderr);
                EXPECT_EQ(probed.per_token_kl, whole.per_token_kl);
                EXPECT_EQ(probed.top1_agreement, whole.top1_agreement);
                EXPECT_EQ(probed.rms_delta_p, whole.rms_delta_p);
                EXPECT_EQ(probed.ppl_ref, whole.ppl_ref);
                EXPECT_EQ(probed.ppl_test, whole.ppl_test);
                EXPECT_EQ(probed.first_scored_token, whole.first_scored_token);
                EXPECT_EQ(probed.protocol.describe(), whole.protocol.describe());
                if (b < m.num_blocks()) probe.advance();
            }
        }
    EXPECT_TRUE(test::entries(dir.path().string()).empty());
}

TEST(KlProbe, MisuseAndCancellationAreNamed) {
    Sample s = sample(600);
    LlamaModel& m = *s.model;
    EvalOptions o;
    o.ctx = 128;
    KlProbe probe(m, s.tokens, o, s.bos);
    for (int b = 0; b < m.num_blocks(); ++b) probe.advance();
    std::string e = test::error_of([&] { probe.advance(); });
    EXPECT_TRUE(test::contains(e, "no block after the last")) << e;
    e = test::error_of([&] { KlProbe too_short(m, std::vector<int32_t>(1, 5), o, s.bos); });
    EXPECT_FALSE(e.empty());
    test::CancelAfter cancel(0);
    KlProbe fresh(m, s.tokens, o, s.bos);
    EXPECT_THROW(fresh.measure(&cancel), Cancelled);
}
