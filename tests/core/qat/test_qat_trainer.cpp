// The QAT trainer on the real model (tinystories-656k, 2 blocks): step 0 is the PTQ model, end-to-end and
// block-wise training lower the held-out KL against full precision, a killed run resumes to the same
// result, cancellation stops between steps with a checkpoint, and token budgets parse.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

#include "analysis/model_eval.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "qat/qat_trainer.h"
#include "quant/codec.h"
#include "jobs/model_quantizer.h"
#include "support/test_paths.h"

namespace quench {
namespace {

struct QatFixture {
    std::unique_ptr<LlamaModel> model;
    std::vector<int32_t> train, heldout;
    std::map<std::size_t, QuantizedTensor> ptq;
};

QatFixture setup(const std::string& spec, int64_t calib_tokens = 0) {
    QatFixture f;
    f.model = load_model(test::real_model_dir());
    const auto tok = load_tokenizer(test::real_model_dir());
    f.train = tokenize_text_file(*tok, test::train_text(), true, 60000);
    f.heldout = tokenize_text_file(*tok, test::eval_text(), true, 4096);
    std::vector<int32_t> calib;
    if (calib_tokens > 0) calib.assign(f.train.begin(), f.train.begin() + calib_tokens);
    QuantizeOptions qo;
    qo.capture.ctx = 128;
    auto r = quantize_model_layers(*f.model, uniform_plan(f.model->layers().select_glob("model.layers.*"),
                                                          CodecSpec::parse(spec)),
                                   calib, qo);
    f.ptq = std::move(r.tensors);
    return f;
}

QatOptions small_options(QatMode mode) {
    QatOptions o;
    o.mode = mode;
    o.ctx = 64;
    o.batch = 4;
    o.tokens = 30 * 4 * 64;
    o.lr = 5e-4;
    o.scale_lr = 2e-3;
    o.eval_windows = 4;
    return o;
}

TEST(QatTrainer, Step0IsThePtqModelForEveryCodecFamily) {
    for (const char* spec : {"paretoq:b=2", "lcqat:had=128", "liftquant:D=16,d=8"}) {
        SCOPED_TRACE(spec);
        QatFixture f = setup(spec, std::string(spec).rfind("lcqat", 0) == 0 ? 4096 : 0);
        std::map<std::size_t, std::unique_ptr<QatLayer>> layers;
        for (const auto& [i, t] : f.ptq) layers[i] = make_qat_layer(t, f.model->original_weight(i));
        const LinearOverride ov = [&](std::size_t i, const at::Tensor& x) {
            auto it = layers.find(i);
            return it == layers.end() ? at::Tensor() : it->second->forward(x);
        };
        torch::NoGradGuard no_grad;
        for (const auto& [i, l] : layers) {
            const at::Tensor x = torch::randn({3, f.model->layers().at(i).in_features});
            EXPECT_LT((l->forward(x) - x.matmul(f.model->weight(i).t())).abs().max().item<float>(), 1e-4)
                << f.model->layers().at(i).name;
        }
        const at::Tensor tokens = torch::tensor(std::vector<int64_t>(f.heldout.begin(), f.heldout.begin() + 128)).view({2, 64});
        const at::Tensor ptq_logits = f.model->forward(tokens);  // the PTQ weights, through the inference path
        const at::Tensor qat_logits = f.model->forward_train(tokens, &ov);
        EXPECT_LT((ptq_logits - f.model->forward_train(tokens)).abs().max().item<float>(), 1e-5);
        EXPECT_LT((ptq_logits - qat_logits).abs().max().item<float>(), 2e-4);
        EXPECT_GT((ptq_logits - f.model->forward_train(tokens, nullptr, LlamaModel::Weights::Original)).abs().max().item<float>(), 1e-2);

        // Issue 17: the bits after QAT are predicted before training, exactly as the trained run counts them
        // (LiftQuant's trained input scales, LC-QAT's per-layer affine maps), and differ from the PTQ bits.
        QuantizeResult trained, ptq;
        for (const auto& [i, l] : layers) trained.tensors[i] = l->export_tensor();
        ptq.tensors = f.ptq;
        const auto plan = uniform_plan(f.model->layers().select_glob("model.layers.*"), CodecSpec::parse(spec));
        EXPECT_NEAR(estimate_plan_bits(f.model->layers(), plan, true).bits_per_weight(), trained.total_bits_per_weight(), 1e-12);
        EXPECT_NEAR(estimate_plan_bits(f.model->layers(), plan).bits_per_weight(), ptq.total_bits_per_weight(), 1e-12);
        if (std::string(spec).rfind("paretoq", 0) != 0) {
            EXPECT_GT(trained.total_bits_per_weight(), ptq.total_bits_per_weight() + 1e-3);
        }
    }
}

TEST(QatTrainer, EndToEndLowersHeldOutKl) {
    QatFixture f = setup("paretoq:b=2");
    QatOptions o = small_options(QatMode::EndToEnd);
    o.kl_weight = 1;
    std::vector<QatProgress> seen;
    const QatResult r = train_qat(*f.model, f.ptq, f.train, f.heldout, o, [&](const QatProgress& p) { seen.push_back(p); });
    ASSERT_EQ(r.total_steps, 30);
    EXPECT_EQ(r.tokens_used, 30 * 4 * 64);
    ASSERT_EQ(seen.size(), 30u);
    EXPECT_EQ(seen.back().step, 30);
    EXPECT_GT(seen.back().tokens_per_second, 0);
    EXPECT_GE(seen.back().heldout_kl, 0);
    ASSERT_GE(r.kl_values.size(), 2u);
    EXPECT_LT(r.kl_values.back(), 0.8 * r.kl_values.front()) << r.kl_values.front() << " -> " << r.kl_values.back();
    // The model now runs the exported tensors, and they reproduce the trained layers' KL.
    ASSERT_EQ(r.tensors.size(), 14u);
    const at::Tensor tokens = torch::tensor(std::vector<int64_t>(f.heldout.begin(), f.heldout.begin() + 256)).view({4, 64});
    torch::NoGradGuard no_grad;
    const at::Tensor lp = torch::log_softmax(f.model->forward_train(tokens, nullptr, LlamaModel::Weights::Original), -1);
    const at::Tensor lq = torch::log_softmax(f.model->forward(tokens), -1);
    EXPECT_NEAR((lp.exp() * (lp - lq)).sum(-1).mean().item<double>(), r.kl_values.back(), 0.05 * r.kl_values.back());
}

TEST(QatTrainer, BlockWiseLowersHeldOutKlOneBlockAtATime) {
    QatFixture f = setup("liftquant:D=16,d=8");
    QatOptions o = small_options(QatMode::Block);
    o.lr = 2e-3;
    const QatResult r = train_qat(*f.model, f.ptq, f.train, f.heldout, o);
    EXPECT_EQ(r.total_steps, 30);
    EXPECT_EQ(r.blocks.front(), 0);
    EXPECT_EQ(r.blocks.back(), 1);
    EXPECT_LT(r.kl_values.back(), r.kl_values.front()) << r.kl_values.front() << " -> " << r.kl_values.back();
}

TEST(QatTrainer, KilledRunResumesToTheUninterruptedResult) {
    test::ScratchDir dir;
    QatOptions o = small_options(QatMode::EndToEnd);
    o.tokens = 12 * 4 * 64;
    o.schedule = QatSchedule::Wsd;
    o.checkpoint_every = 2;
    QatFixture a = setup("paretoq:b=2");
    const QatResult full = train_qat(*a.model, a.ptq, a.train, {}, o);

    o.checkpoint_dir = dir.file("ckpt");
    QatFixture b = setup("paretoq:b=2");
    struct Killed : std::runtime_error {
        Killed() : std::runtime_error("killed") {}
    };
    // A kill after step 5: the last checkpoint is step 4's.
    EXPECT_THROW(train_qat(*b.model, b.ptq, b.train, {}, o, [](const QatProgress& p) { if (p.step == 5) throw Killed(); }),
                 Killed);
    QatFixture c = setup("paretoq:b=2");
    const QatResult resumed = train_qat(*c.model, c.ptq, c.train, {}, o);
    EXPECT_EQ(resumed.resumed_from, 4);
    ASSERT_EQ(resumed.losses.size(), full.losses.size());
    EXPECT_DOUBLE_EQ(resumed.final_loss(), full.final_loss());
    EXPECT_EQ(resumed.tokens_used, full.tokens_used);
    for (const auto& [i, t] : full.tensors)
        EXPECT_TRUE(torch::equal(t.part("scales").data, resumed.tensors.at(i).part("scales").data));

    // A checkpoint of other options is refused by name.
    QatOptions other = o;
    other.seed = 9;
    QatFixture d = setup("paretoq:b=2");
    try {
        train_qat(*d.model, d.ptq, d.train, {}, other);
        FAIL() << "expected a signature error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("signature"), std::string::npos) << e.what();
    }
}

// Block-wise, killed in the second block: the resumed run walks the shared windows through the trained first
// block again and ends exactly where the uninterrupted run does.
TEST(QatTrainer, KilledBlockWiseRunResumesToTheUninterruptedResult) {
    test::ScratchDir dir;
    QatOptions o = small_options(QatMode::Block);
    o.checkpoint_every = 3;
    QatFixture a = setup("paretoq:b=2");
    const QatResult full = train_qat(*a.model, a.ptq, a.train, {}, o);
    ASSERT_EQ(full.total_steps, 30);
    o.checkpoint_dir = dir.file("ckpt");
    QatFixture b = setup("paretoq:b=2");
    struct Killed : std::runtime_error {
        Killed() : std::runtime_error("killed") {}
    };
    EXPECT_THROW(train_qat(*b.model, b.ptq, b.train, {}, o, [](const QatProgress& p) { if (p.step == 20) throw Killed(); }),
                 Killed);
    QatFixture c = setup("paretoq:b=2");
    const QatResult resumed = train_qat(*c.model, c.ptq, c.train, {}, o);
    EXPECT_EQ(resumed.resumed_from, 18);  // in block 1, which started at step 15
    ASSERT_EQ(resumed.losses.size(), full.losses.size());
    for (std::size_t i = 0; i < full.losses.size(); ++i) EXPECT_EQ(resumed.losses[i], full.losses[i]) << "step " << i + 1;
    EXPECT_EQ(resumed.blocks, full.blocks);
    for (const auto& [i, t] : full.tensors)
        EXPECT_TRUE(torch::equal(t.part("scales").data, resumed.tensors.at(i).part("scales").data));
}

TEST(QatTrainer, CancelStopsBetweenStepsAndCheckpoints) {
    test::ScratchDir dir;
    QatOptions o = small_options(QatMode::Block);
    o.tokens = 8 * 4 * 64;
    o.checkpoint_dir = dir.file("ckpt");
    o.checkpoint_every = 0;
    QatFixture f = setup("paretoq:b=3");
    CancelFlagProgress cancel;
    int64_t last = 0;
    EXPECT_THROW(train_qat(*f.model, f.ptq, f.train, {}, o,
                           [&](const QatProgress& p) {
                               last = p.step;
                               if (p.step == 3) cancel.cancel();
                           },
                           &cancel),
                 Cancelled);
    EXPECT_EQ(last, 3);
    EXPECT_TRUE(std::filesystem::exists(o.checkpoint_dir + "/qat-checkpoint.pt"));
    QatFixture g = setup("paretoq:b=3");
    const QatResult r = train_qat(*g.model, g.ptq, g.train, {}, o);
    EXPECT_EQ(r.resumed_from, 3);
    EXPECT_EQ(r.losses.size(), 8u);
}

TEST(QatTrainer, TokenBudgetsParse) {
    EXPECT_EQ(parse_token_budget("20000", 0), 20000);
    EXPECT_EQ(parse_token_budget("200k", 0), 200000);
    EXPECT_EQ(parse_token_budget("1.5M", 0), 1500000);
    EXPECT_EQ(parse_token_budget("10%@train", 50000), 5000);
    EXPECT_EQ(parse_token_budget("0.1%@8B", 0), 8000000);
    EXPECT_EQ(parse_token_budget("0.5@train", 1000), 500);
    EXPECT_THROW(parse_token_budget("lots", 0), Error);
    EXPECT_THROW(parse_token_budget("0", 0), Error);
}

}  // namespace
}  // namespace quench
