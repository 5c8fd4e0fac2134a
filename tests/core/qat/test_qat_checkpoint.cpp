// The QAT checkpoint file on its own (core/qat/qat_checkpoint.h): a saved checkpoint loads back every
// parameter, curve and the optimizer's moments exactly; no file means step 0; and a damaged, foreign or
// other-version file is refused with an error naming the file, never loaded half-way.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <cstring>

#include "common/error.h"
#include "qat/qat_checkpoint.h"
#include "qat/qat_layer.h"
#include "quant/codec.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"
#include "support/weights.h"

namespace quench {
namespace {

using Layers = std::map<std::size_t, std::unique_ptr<QatLayer>>;

// Two ParetoQ 2-bit layers built from seeded weights (their PTQ result is the starting point).
Layers two_layers(uint64_t seed) {
    Layers layers;
    for (std::size_t i = 0; i < 2; ++i) {
        const at::Tensor w = test::trained_like(16, 64, seed + i);
        const QuantizedTensor q = make_codec(CodecSpec::parse("paretoq:b=2"))->quantize(w, {});
        layers[i * 3] = make_qat_layer(q, w);
    }
    return layers;
}

std::vector<at::Tensor> all_params(const Layers& layers) {
    std::vector<at::Tensor> out;
    for (const auto& [i, l] : layers)
        for (const auto& p : l->params()) out.push_back(p.tensor);
    return out;
}

// A few AdamW steps on a made-up loss, so parameters and moments are away from their initial values.
void train_a_little(const Layers& layers, torch::optim::AdamW& opt) {
    for (int step = 0; step < 3; ++step) {
        opt.zero_grad();
        at::Tensor loss = torch::zeros({});
        for (const auto& [i, l] : layers) loss = loss + l->forward(torch::ones({2, 64})).pow(2).sum();
        loss.backward();
        opt.step();
    }
}

QatResult some_curve() {
    QatResult c;
    c.blocks = {0, 0, 1};
    c.losses = {3.5, 2.25, 1.125};
    c.lrs = {1e-3, 5e-4, 1e-4};
    c.kl_steps = {0, 3};
    c.kl_values = {0.75, 0.5};
    c.tokens_used = 768;
    return c;
}

TEST(QatCheckpoint, SavedStateLoadsBackExactly) {
    test::ScratchDir dir;
    const std::string ckpt = dir.file("ckpt");
    const Layers a = two_layers(1);
    torch::optim::AdamW opt_a(all_params(a), torch::optim::AdamWOptions(1e-2));
    train_a_little(a, opt_a);
    save_qat_checkpoint(ckpt, "run-1", 3, some_curve(), a, opt_a);
    EXPECT_TRUE(std::filesystem::exists(qat_checkpoint_path(ckpt)));

    const Layers b = two_layers(7);  // other starting values: everything must come from the file
    torch::optim::AdamW opt_b(all_params(b), torch::optim::AdamWOptions(1e-2));
    QatResult curve;
    const int64_t done = load_qat_checkpoint(ckpt, "run-1", curve, b, [&](int64_t) { return &opt_b; });
    EXPECT_EQ(done, 3);
    const std::vector<at::Tensor> pa = all_params(a), pb = all_params(b);
    ASSERT_EQ(pa.size(), pb.size());
    for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i;
    const QatResult want = some_curve();
    EXPECT_EQ(curve.blocks, want.blocks);
    EXPECT_EQ(curve.losses, want.losses);
    EXPECT_EQ(curve.lrs, want.lrs);
    EXPECT_EQ(curve.kl_steps, want.kl_steps);
    EXPECT_EQ(curve.kl_values, want.kl_values);
    EXPECT_EQ(curve.tokens_used, 768);
    EXPECT_EQ(curve.steps, (std::vector<int64_t>{1, 2, 3}));
    // The optimizer continues as the saved one would: one more step on both gives equal parameters.
    train_a_little(a, opt_a);
    train_a_little(b, opt_b);
    for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i << " after steps";
}

TEST(QatCheckpoint, NoFileIsStepZeroAndNoOptimizerIsAsked) {
    test::ScratchDir dir;
    const Layers l = two_layers(1);
    QatResult curve;
    bool asked = false;
    const auto ask = [&](int64_t) -> torch::optim::Optimizer* {
        asked = true;
        return nullptr;
    };
    EXPECT_EQ(load_qat_checkpoint(dir.file("none"), "run-1", curve, l, ask), 0);
    EXPECT_EQ(load_qat_checkpoint("", "run-1", curve, l, ask), 0);
    EXPECT_FALSE(asked);
    EXPECT_TRUE(curve.losses.empty());
}

TEST(QatCheckpoint, DamagedForeignOrNewerFilesAreRefusedByName) {
    test::ScratchDir dir;
    const std::string ckpt = dir.file("ckpt");
    const std::string path = qat_checkpoint_path(ckpt);
    const Layers a = two_layers(1);
    torch::optim::AdamW opt(all_params(a), torch::optim::AdamWOptions(1e-2));
    save_qat_checkpoint(ckpt, "run-1", 2, some_curve(), a, opt);
    const std::string good = test::read_bytes(path);
    const auto no_opt = [](int64_t) -> torch::optim::Optimizer* { return nullptr; };
    auto refused = [&](const std::string& signature, const std::vector<std::string>& words) {
        QatResult curve;
        const Layers b = two_layers(5);
        try {
            load_qat_checkpoint(ckpt, signature, curve, b, no_opt);
            ADD_FAILURE() << "expected an error mentioning " << words.front();
        } catch (const Error& e) {
            EXPECT_TRUE(test::contains_all(e.what(), words)) << e.what();
        }
    };
    // Another run's checkpoint.
    refused("run-2", {path, "signature", "run-1"});
    // Truncated (a disk that filled, a copy cut short) and garbage.
    test::write_bytes(path, good.substr(0, good.size() / 2));
    refused("run-1", {path, "not a readable QAT checkpoint"});
    test::write_bytes(path, std::string(1000, 'x'));
    refused("run-1", {path, "not a readable QAT checkpoint"});
    // A file from a newer build, written here as that build would.
    {
        torch::serialize::OutputArchive ar;
        ar.write("version", torch::tensor(int64_t{2}));
        ar.save_to(path);
    }
    refused("run-1", {path, "version 2"});
    // The right version and signature but no parameters: the missing entry is named.
    {
        torch::serialize::OutputArchive ar;
        ar.write("version", torch::tensor(int64_t{1}));
        const std::string sig = "run-1";
        at::Tensor s = torch::empty({static_cast<int64_t>(sig.size())}, torch::kUInt8);
        std::memcpy(s.data_ptr(), sig.data(), sig.size());
        ar.write("signature", s);
        ar.write("step", torch::tensor(int64_t{2}));
        ar.write("tokens_used", torch::tensor(int64_t{10}));
        ar.save_to(path);
    }
    refused("run-1", {path, "param.0."});
}

}  // namespace
}  // namespace quench
