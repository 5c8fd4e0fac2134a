// LC-QAT lattice codec: the codebook's geometry, exact nearest-codeword search, the stored parameterisation
// against an explicit matrix formula, Hessian-aware coding on the real model's layers, rate-distortion
// against scalar 2-bit rounding, honest bits, determinism and clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>

#include "analysis/layer_capture.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/lcqat_lattice.h"
#include "support/errors.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

// O as printed in docs/methods.md 1(a) (UniSVQ v0 lib/codebook/ortho_dim4.pt).
at::Tensor doc_ortho() {
    return torch::tensor({+0.614504, -0.751269, -0.083694, -0.225777, +0.226497, -0.059458, +0.829679, +0.506751,
                          -0.396969, -0.493435, -0.348915, +0.690794, -0.643040, -0.434260, +0.427653, -0.463715},
                         torch::kFloat64)
        .view({4, 4});
}

// Sylvester Hadamard matrix of order n (power of two), orthonormal: an independent check of hadamard_blocks.
at::Tensor hadamard_matrix(int64_t n) {
    auto h = torch::ones({1, 1}, torch::kFloat64);
    for (int64_t k = 1; k < n; k *= 2) h = torch::cat({torch::cat({h, h}, 1), torch::cat({h, -h}, 1)}, 0);
    return h / std::sqrt(static_cast<double>(n));
}

at::Tensor block_diag_hadamard(int64_t n, int64_t block) {
    auto out = torch::zeros({n, n}, torch::kFloat64);
    for (int64_t i = 0; i < n; i += block) out.narrow(0, i, block).narrow(1, i, block).copy_(hadamard_matrix(block));
    return out;
}

using quench::test::error_of;

// Per-row symmetric 4-level uniform grid {-1.5, -0.5, 0.5, 1.5} * step: scalar 2-bit rounding. With
// step_over_rms > 0 the step is that multiple of the row RMS; with 0 it is searched per row for the least
// MSE (step / RMS in [0.5, 2] by 0.0025). Returns the mean squared error.
double scalar_2bit_mse(const at::Tensor& W, double step_over_rms) {
    const auto rms = W.square().mean(1, true).sqrt();
    auto best = torch::full({W.size(0), 1}, INFINITY, torch::kFloat32);
    for (double r = step_over_rms > 0 ? step_over_rms : 0.5; r <= 2.0; r += 0.0025) {
        const auto step = rms * r;
        const auto q = ((W / step).floor().clamp(-2, 1) + 0.5) * step;
        best = torch::minimum(best, (q - W).square().mean(1, true));
        if (step_over_rms > 0) break;
    }
    return best.mean().item<double>();
}

// Plain RTN: the per-row step puts the outer levels at +-absmax.
double rtn_absmax_2bit_mse(const at::Tensor& W) {
    const auto step = W.abs().amax(1, true) * (2.0 / 3.0);
    return (((W / step).floor().clamp(-2, 1) + 0.5) * step - W).square().mean().item<double>();
}

double mse(const at::Tensor& a, const at::Tensor& b) { return (a - b).square().mean().item<double>(); }

}  // namespace

TEST(LcqatCodebook, Has256ZeroMeanUnitVariancePointsOnTheRotatedGrid) {
    const auto O = doc_ortho();
    EXPECT_TRUE(torch::allclose(O.matmul(O.t()), torch::eye(4, torch::kFloat64), 0, 2e-6)) << O.matmul(O.t());
    for (const std::string kind : {"ortho", "identity"}) {
        const auto cb = LcqatCodebook::make(kind);
        const auto c = cb.codewords().to(torch::kFloat64);
        ASSERT_EQ(c.sizes(), (std::vector<int64_t>{256, 4}));
        EXPECT_EQ(std::get<0>(torch::unique_dim(c, 0)).size(0), 256) << kind;
        EXPECT_TRUE(torch::allclose(c.mean(0), torch::zeros({4}, torch::kFloat64), 0, 1e-6)) << kind << c.mean(0);
        EXPECT_TRUE(torch::allclose(c.square().mean(0), torch::ones({4}, torch::kFloat64), 0, 1e-5)) << kind;
        // c(q) = O (q - 1.5) / sqrt(1.25), with q the base-4 digits of the index, first digit most significant.
        const auto Oexp = kind == "ortho" ? O : torch::eye(4, torch::kFloat64);
        const auto q = lcqat_index_digits(torch::arange(256, torch::kLong)).to(torch::kFloat64);
        EXPECT_TRUE(torch::allclose(c, (q - 1.5).matmul(Oexp.t()) / std::sqrt(1.25), 0, 1e-6)) << kind;
    }
    EXPECT_TRUE(torch::equal(lcqat_index_digits(torch::tensor({1, 64, 255, 27}, torch::kLong)),
                             torch::tensor({0, 0, 0, 1, 1, 0, 0, 0, 3, 3, 3, 3, 0, 1, 2, 3}, torch::kLong).view({4, 4})));
    const auto all = torch::arange(256, torch::kLong);
    EXPECT_TRUE(torch::equal(lcqat_index_of(lcqat_index_digits(all)), all));
}

TEST(LcqatCodebook, NearestCodewordMatchesBruteForce) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    for (const std::string kind : {"ortho", "identity"}) {
        const auto cb = LcqatCodebook::make(kind);
        const auto c = cb.codewords().to(torch::kFloat64);
        // Scales from inside the box to far outside it, where clamping decides.
        for (double sigma : {0.3, 1.0, 3.0}) {
            const auto w = torch::randn({20000, 4}, gen) * sigma;
            const auto w64 = w.to(torch::kFloat64);
            const auto d = w64.square().sum(1, true) - 2 * w64.matmul(c.t()) + c.square().sum(1);  // [N, 256]
            const auto brute = d.argmin(1);
            const auto fast = lcqat_index_of(cb.nearest(w));
            EXPECT_TRUE(torch::equal(fast, brute)) << kind << " sigma " << sigma << ": "
                                                   << fast.ne(brute).sum().item<int64_t>() << " mismatches";
        }
    }
}

TEST(LcqatCodec, DequantizesTheExplicitLayerFormulaFromItsParts) {
    // 48 rows: the output-side block shrinks to 16; 256 columns: two 128-blocks on the input side.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const auto W = torch::randn({48, 256}, gen) * 0.05;
    const auto codec = make_codec("lcqat:hessian=0");
    const auto q = codec->quantize(W, {nullptr, 9, nullptr});
    const LcqatWeight p = LcqatWeight::from(q);
    EXPECT_EQ(p.had_in, 128);
    EXPECT_EQ(p.had_out, 16);
    EXPECT_TRUE(torch::equal(p.su.abs(), torch::ones({256})));  // random signs at PTQ time
    const auto A = p.A.to(torch::kFloat64), b = p.b.to(torch::kFloat64);
    const auto Wt = (p.q.view({48, 64, 4}).to(torch::kFloat64).matmul(A.t()) + b).reshape({48, 256});
    const auto expect = torch::diag(p.sv.to(torch::kFloat64)).matmul(block_diag_hadamard(48, 16)).matmul(Wt)
                            .matmul(block_diag_hadamard(256, 128)).matmul(torch::diag(p.su.to(torch::kFloat64)));
    const auto got = codec->dequantize(q);
    EXPECT_TRUE(torch::allclose(got.to(torch::kFloat64), expect, 1e-5, 1e-6));
    EXPECT_TRUE(torch::equal(got, p.dense()));
    EXPECT_LT(mse(got, W) / W.square().mean().item<double>(), 0.15);
}

// On an isotropic Gaussian a rotated product grid has exactly the distortion of the unrotated one, so no
// setting of this codebook can beat the best per-row scalar 4-level grid there: the lattice lands on the
// 4-level uniform quantizer's MSE at its fixed step, s / 0.83 = 1.0776 sigma (0.12139 sigma^2, by numerical
// integration), 2% above the Gaussian optimum (step 0.9957 sigma, 0.11885). It beats plain absmax RTN, and
// on heavy-tailed weights (a Gaussian scale mixture, like trained layers) the Hadamard incoherence makes it
// clearly better than even the MSE-optimal scalar grid.
TEST(LcqatCodec, TwoBitDistortionAgainstScalarRounding) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
    const auto gauss = torch::randn({256, 1024}, gen);
    const auto heavy = torch::randn({256, 1024}, gen) * torch::exp(0.35 * torch::randn({256, 1024}, gen));
    for (const std::string spec : {"lcqat:hessian=0", "lcqat:hessian=0,cb=identity"}) {
        const auto codec = make_codec(spec);
        const auto lattice_mse = [&](const at::Tensor& W) {
            return mse(codec->dequantize(codec->quantize(W, {nullptr, 1, nullptr})), W) / W.square().mean().item<double>();
        };
        const double g = lattice_mse(gauss), g_opt = scalar_2bit_mse(gauss, 0) / gauss.square().mean().item<double>();
        const double g_rtn = rtn_absmax_2bit_mse(gauss) / gauss.square().mean().item<double>();
        const double h = lattice_mse(heavy), h_opt = scalar_2bit_mse(heavy, 0) / heavy.square().mean().item<double>();
        std::printf("[ info ] %s relative weight MSE: Gaussian %.5f (scalar: MSE-optimal step %.5f, absmax RTN %.5f); "
                    "heavy-tailed %.5f (scalar MSE-optimal %.5f)\n", spec.c_str(), g, g_opt, g_rtn, h, h_opt);
        EXPECT_NEAR(g, 0.12139, 0.02 * 0.12139) << spec;
        EXPECT_NEAR(g_opt, 0.11885, 0.02 * 0.11885);
        EXPECT_NEAR(scalar_2bit_mse(gauss, 1.0776) / gauss.square().mean().item<double>(), g, 0.01 * g) << spec;
        EXPECT_LT(g, 0.6 * g_rtn) << spec;
        EXPECT_LT(h, 0.8 * h_opt) << spec;
    }
}

TEST(LcqatCodec, HessianLowersOutputErrorOnRealLayers) {
    auto model = load_model(test::real_model_dir());
    auto tok = load_tokenizer(test::real_model_dir());
    const auto tokens =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.train.txt"), true, 8000);
    const auto layers = model->layers().select_glob("model.layers.*");
    CaptureOptions opt;
    opt.ctx = 128;
    opt.hessian = true;
    opt.sample_rows = 512;
    const auto stats = capture_layer_inputs(*model, layers, tokens, opt);
    const auto with = make_codec("lcqat"), without = make_codec("lcqat:hessian=0");
    double sum_with = 0, sum_without = 0;
    for (std::size_t l : layers) {
        const auto& s = stats.at(l);
        const at::Tensor& W = model->original_weight(l);
        const CalibStats calib{s.hessian(), s.abs_mean};
        const auto out = [&](const at::Tensor& w) { return s.sample.matmul(w.t()); };
        const auto y = out(W);
        const double e_with = mse(out(with->dequantize(with->quantize(W, {&calib, 7, nullptr}))), y);
        const double e_without = mse(out(without->dequantize(without->quantize(W, {&calib, 7, nullptr}))), y);
        const double ref = y.square().mean().item<double>();
        std::printf("[ info ] %-32s output rel. error: Hessian %.4f, no Hessian %.4f\n",
                    model->layers().at(l).name.c_str(), e_with / ref, e_without / ref);
        EXPECT_LT(e_with, e_without) << model->layers().at(l).name;
        sum_with += e_with / ref;
        sum_without += e_without / ref;
    }
    std::printf("[ info ] mean output rel. error over %zu layers: Hessian %.4f, no Hessian %.4f\n", layers.size(),
                sum_with / layers.size(), sum_without / layers.size());
    EXPECT_LT(sum_with, 0.8 * sum_without);
}

TEST(LcqatCodec, BitsAreCountedHonestly) {
    // [256, 512]: codes 256*512/4 indices * 8 bits; su 512 and sv 256 fp16; A (16) and b (4) fp32, shared.
    const auto codec = make_codec("lcqat:hessian=0");
    const int64_t codes = 256 * 512 * 2, su = 512 * 16, sv = 256 * 16, ab = 20 * 32;
    const double n = 256.0 * 512.0;
    const auto est = codec->estimate_bits(256, 512);
    EXPECT_DOUBLE_EQ(est.code_bits_per_weight, 2.0);
    EXPECT_DOUBLE_EQ(est.total_bits_per_weight, (codes + su + sv + ab) / n);  // 2.0986328125
    EXPECT_DOUBLE_EQ(est.total_bits_per_weight, 2.0986328125);
    const auto q = codec->quantize(torch::randn({256, 512}), {nullptr, 0, nullptr});
    EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), est.total_bits_per_weight);
    EXPECT_EQ(q.part("codes").data.numel(), 256 * 512 / 4);
    EXPECT_EQ(q.part("codes").bits, codes);
    EXPECT_FALSE(q.part("sv").shared);
    EXPECT_TRUE(q.part("A").shared && q.part("b").shared);
}

TEST(LcqatCodec, DeterministicForASeed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
    const auto W = torch::randn({64, 256}, gen);
    const auto x = torch::randn({512, 256}, gen) * (0.2 + torch::rand({256}, gen));
    const CalibStats calib{x.t().matmul(x) / 512, {}};
    const auto codec = make_codec("lcqat:tune=2");
    const auto a = codec->quantize(W, {&calib, 5, nullptr}), b = codec->quantize(W, {&calib, 5, nullptr});
    const auto c = codec->quantize(W, {&calib, 6, nullptr});
    for (std::size_t i = 0; i < a.parts.size(); ++i)
        EXPECT_TRUE(torch::equal(a.parts[i].data, b.parts[i].data)) << a.parts[i].name;
    EXPECT_FALSE(torch::equal(a.part("su").data, c.part("su").data));
    EXPECT_FALSE(torch::equal(a.part("codes").data, c.part("codes").data));
    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(codec->quantize(W, {&calib, 5, &cancel}), Cancelled);
}

TEST(LcqatCodec, BadSpecsAndShapesGiveClearErrors) {
    EXPECT_NE(error_of([] { CodecSpec::parse("lcqat:b=3"); }).find("b must be one of 2"), std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("lcqat:cb=e8"); }).find("cb must be one of ortho, identity"),
              std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("lcqat:had=100"); }).find("had must be one of"), std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("lcqat:hessian=2"); }).find("hessian must be one of 0, 1"), std::string::npos);
    const auto codec = make_codec("lcqat");
    EXPECT_TRUE(codec->needs_hessian());
    EXPECT_FALSE(make_codec("lcqat:hessian=0")->needs_hessian());
    const auto W = torch::randn({32, 256});
    EXPECT_NE(error_of([&] { codec->quantize(W, {}); }).find("needs calibration data"), std::string::npos);
    const CalibStats no_hessian{{}, torch::ones({256})};
    EXPECT_NE(error_of([&] { codec->quantize(W, {&no_hessian, 0, nullptr}); }).find("lcqat:hessian=0"), std::string::npos);
    const CalibStats wrong{torch::eye(128), {}};
    EXPECT_NE(error_of([&] { codec->quantize(W, {&wrong, 0, nullptr}); }).find("expected [256, 256]"), std::string::npos);
    const CalibStats zero{torch::zeros({256, 256}), {}};
    EXPECT_NE(error_of([&] { codec->quantize(W, {&zero, 0, nullptr}); }).find("no positive diagonal"), std::string::npos);
    EXPECT_NE(error_of([&] { codec->estimate_bits(32, 258); }).find("not a multiple of 4"), std::string::npos);
    // had= is the largest block: each side takes the largest power of two up to it that divides its width.
    const LcqatBlocks b = lcqat_blocks(codec->spec(), 48, 576);
    EXPECT_EQ(b.in, 64);
    EXPECT_EQ(b.out, 16);
    EXPECT_EQ(lcqat_blocks(codec->spec(), 4096, 11008).in, 128);  // 11008 = 86 x 128
    EXPECT_EQ(lcqat_blocks(codec->spec(), 7, 172).in, 4);
    const auto W576 = torch::randn({48, 576});
    const QuantizedTensor q128 = make_codec("lcqat:hessian=0")->quantize(W576, {});
    const QuantizedTensor q64 = make_codec("lcqat:hessian=0,had=64")->quantize(W576, {});
    EXPECT_TRUE(torch::equal(q128.part("codes").data, q64.part("codes").data));
    EXPECT_NE(error_of([&] { codec->quantize(torch::randn({4, 4, 4}), {}); }).find("2-D"), std::string::npos);
    QuantizedTensor q = make_codec("lcqat:hessian=0")->quantize(W, {});
    q.parts.erase(q.parts.begin() + 1);
    EXPECT_NE(error_of([&] { codec->dequantize(q); }).find("missing part 'su'"), std::string::npos);
}
