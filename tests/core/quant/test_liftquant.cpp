// LiftQuant: the nearest-code search against a direct transcription of the paper's search, the trained
// lift matrices against the paper's Table 1 (MSE per dimension on a unit Gaussian source), hand-counted
// bits, determinism, the optional steps, real model layers and bad specs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/progress.h"
#include "io/model_loading.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/lift_matrix.h"
#include "support/errors.h"
#include "support/test_paths.h"
#include "support/weights.h"

using namespace quench;
using quench::test::error_of;
using quench::test::gaussian;
using quench::test::rel_error;

namespace {

// The paper's search written out with dense tensors (lattice_generator2.py's benchmark): distances from
// w to M sign([M; N]^{-1} [w; z]) for every z.
at::Tensor reference_min_distance(const at::Tensor& M, const at::Tensor& w) {
    const int64_t d = M.size(0), D = M.size(1), K = int64_t(1) << (D - d);
    const auto Md = M.to(torch::kFloat64);
    const auto N = std::get<2>(torch::linalg_svd(Md, true)).slice(0, d);
    const auto inv = torch::linalg_inv(torch::cat({Md, N}, 0));
    auto z = torch::empty({K, D - d}, torch::kFloat64);
    for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < D - d; ++j) z[i][j] = ((i >> j) & 1) ? 1.0 : -1.0;
    const auto wd = w.to(torch::kFloat64);
    const auto lifted =
        torch::cat({wd.unsqueeze(1).expand({-1, K, -1}), z.unsqueeze(0).expand({w.size(0), -1, -1})}, 2);
    const auto y = torch::sign(lifted.matmul(inv.t()));
    return std::get<0>((wd.unsqueeze(1) - y.matmul(Md.t())).square().sum(-1).min(1));
}

}  // namespace

TEST(LiftSearch, FindsThePapersNearestCandidate) {
    for (auto [D, d] : {std::pair<int64_t, int64_t>{16, 8}, {13, 10}, {20, 9}}) {
        const auto M = gaussian({d, D}, 1) / std::sqrt(double(D));
        const auto w = gaussian({200, d}, 2);
        const LiftSearch search(M);
        const auto y = lift_codes_to_signs(search.encode(w), D);
        const auto dist = (w - y.matmul(M.t())).square().sum(1);
        const auto reference = reference_min_distance(M, w).to(torch::kFloat32);
        EXPECT_TRUE(torch::allclose(dist, reference, 1e-4, 1e-5)) << D << "/" << d;

        const auto [codes, dists] = search.nearest(w, 5);
        EXPECT_TRUE(torch::equal(codes.select(1, 0), search.encode(w)));
        EXPECT_TRUE((dists.slice(1, 1) >= dists.slice(1, 0, 4)).all().item<bool>()) << "nearest first";
        const auto decoded = (w.unsqueeze(1) - lift_codes_to_signs(codes, D).matmul(M.t())).square().sum(-1);
        EXPECT_TRUE(torch::allclose(decoded, dists, 1e-4, 1e-5)) << "distances belong to the codes";
    }
}

namespace {

// MSE per dimension when every vector takes its nearest codeword, found by trying all 2^D of them.
double exhaustive_mse(const at::Tensor& M, int64_t samples, uint64_t seed) {
    const int64_t D = M.size(1);
    const auto codebook = lift_codes_to_signs(torch::arange(int64_t(1) << D), D).matmul(M.t());  // [2^D, d]
    const auto norms = codebook.square().sum(1);
    const auto w = gaussian({samples, M.size(0)}, seed);
    double total = 0;
    for (int64_t i = 0; i < samples; i += 500) {
        const auto x = w.slice(0, i, i + 500);
        const auto nearest = std::get<1>((norms - 2 * x.matmul(codebook.t())).min(1));
        total += (x - codebook.index_select(0, nearest)).square().sum().item<double>();
    }
    return total / w.numel();
}

}  // namespace

// Table 1 of the paper (docs/methods.md 4(e)), for the matrices the codec uses (cpu_budget recipe).
TEST(LiftMatrix, TrainedMatricesMatchThePapersGaussianMse) {
    struct Row {
        int64_t D, d;
        double mse;
        int64_t samples;  // fewer where the search is costly; the estimate's spread stays under 1%
    };
    for (const Row& r : {Row{24, 10, 0.053, 4000}, Row{32, 20, 0.146, 4000}, Row{16, 8, 0.089, 50000}}) {
        const auto M = lift_matrix(r.D, r.d, 0);
        ASSERT_EQ(M.sizes(), (std::vector<int64_t>{r.d, r.D}));
        const double mse = lift_mse(M, r.samples, 1234);
        const std::string name = "LQ-" + std::to_string(r.D) + "/" + std::to_string(r.d);
        std::printf("%s: MSE %.4f (Table 1: %.3f)\n", name.c_str(), mse, r.mse);
        if (r.D == 16) {
            // Table 1's 16/8 figure is matched by the exhaustive nearest codeword. The paper's candidate
            // search costs about 4% more here even after its full recipe (3000 steps x 500 samples x 5
            // restarts measured 0.0928 searched, 0.0904 exhaustive), so the searched MSE gets 6%.
            const double exhaustive = exhaustive_mse(M, 8000, 1234);
            std::printf("%s: exhaustive nearest codeword MSE %.4f\n", name.c_str(), exhaustive);
            EXPECT_NEAR(exhaustive, r.mse, 0.05 * r.mse) << name;
            EXPECT_NEAR(mse, r.mse, 0.06 * r.mse) << name;
        } else {
            EXPECT_NEAR(mse, r.mse, 0.05 * r.mse) << name;
        }
        // Training must beat its orthonormal start (same samples on both sides).
        const auto start = std::get<0>(torch::linalg_qr(gaussian({r.D, r.d}, 9))).t().contiguous();
        EXPECT_LT(lift_mse(M, 2000, 77), lift_mse(start, 2000, 77)) << name;
    }
}

TEST(LiftMatrix, TrainingIsSeededAndCancellable) {
    LiftTrainOptions o;
    o.iterations = 20;
    o.batch = 64;
    o.restarts = 2;
    o.test_samples = 2000;
    const auto a = train_lift_matrix(12, 6, 3, o);
    EXPECT_TRUE(torch::equal(a, train_lift_matrix(12, 6, 3, o)));
    EXPECT_FALSE(torch::equal(a, train_lift_matrix(12, 6, 4, o)));
    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(train_lift_matrix(12, 6, 3, o, &cancel), Cancelled);
    EXPECT_NE(error_of([&] { train_lift_matrix(8, 8, 0, o); }).find("D must be greater than d"), std::string::npos);
}

TEST(LiftMatrix, DiskCacheHoldsTheTrainedMatrix) {
    test::ScratchDir dir;
    // Points the cache at the scratch dir and restores the variable however the test ends.
    struct CacheHome {
        const char* old = std::getenv("XDG_CACHE_HOME");
        std::string saved = old ? old : "";
        explicit CacheHome(const std::string& dir) { setenv("XDG_CACHE_HOME", dir.c_str(), 1); }
        ~CacheHome() { old ? setenv("XDG_CACHE_HOME", saved.c_str(), 1) : unsetenv("XDG_CACHE_HOME"); }
    } home(dir.path().string());
    LiftTrainOptions o;
    o.iterations = 5;
    o.restarts = 1;
    const auto M = lift_matrix(12, 8, 4242, o);  // a recipe no other test uses, so it is trained here

    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir.path() / "quench")) files.push_back(e.path());
    ASSERT_EQ(files.size(), 1u);
    EXPECT_NE(files[0].filename().string().find("D12-d8-seed4242"), std::string::npos);
    std::ifstream in(files[0], std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_EQ(bytes.size(), 16u + M.numel() * sizeof(float));  // magic, D, d, then M row-major
    EXPECT_EQ(std::memcmp(bytes.data() + 16, M.data_ptr<float>(), M.numel() * sizeof(float)), 0);
}

TEST(LiftQuantCodec, BitsAreCountedByHand) {
    // 256 x 480 at 16/8 with the Hadamard signs: codes 256 * 60 chunks * 16 bits, fp16 row scales,
    // fp16 M (8 x 16), one sign bit per column.
    const auto codec = make_codec("liftquant:D=16,d=8");
    const BitsEstimate est = codec->estimate_bits(256, 480);
    EXPECT_DOUBLE_EQ(est.code_bits_per_weight, 2.0);
    EXPECT_DOUBLE_EQ(est.total_bits_per_weight, (245760.0 + 4096 + 2048 + 480) / 122880);
    const QuantizedTensor q = codec->quantize(gaussian({256, 480}, 5), {nullptr, 1, nullptr});
    EXPECT_DOUBLE_EQ(q.code_bits_per_weight(), 2.0);
    EXPECT_DOUBLE_EQ(q.total_bits_per_weight(), est.total_bits_per_weight);
    EXPECT_TRUE(q.part("M").shared);
    EXPECT_EQ(q.part("codes").data.numel(), 245760 / 8);

    // Without the Hadamard and with activation scales: no sign bits, 16 bits per column instead.
    const auto awq = make_codec("liftquant:D=24,d=10,had=0,awq");
    EXPECT_DOUBLE_EQ(awq->estimate_bits(256, 480).total_bits_per_weight,
                     (256.0 * 48 * 24 + 256 * 16 + 10 * 24 * 16 + 480 * 16) / 122880);
    for (auto [spec, bits] : {std::pair<const char*, double>{"liftquant:D=16,d=10", 1.6}, {"liftquant:D=24,d=10", 2.4},
                              {"liftquant:D=20,d=8", 2.5}, {"liftquant:D=24,d=8", 3.0}})
        EXPECT_DOUBLE_EQ(make_codec(spec)->estimate_bits(256, 480).code_bits_per_weight, bits) << spec;
}

TEST(LiftQuantCodec, GaussianWeightsCostTheGaussianMse) {
    // Rows of a Gaussian matrix normalise to unit variance, so the relative error squared is the codebook's
    // Gaussian MSE; the M part is the same for every layer seed, the signs are not.
    const auto codec = make_codec("liftquant:D=16,d=8");
    const auto W = gaussian({512, 256}, 6) * 0.02;
    const QuantizedTensor q = codec->quantize(W, {nullptr, 7, nullptr});
    const double rel = rel_error(codec->dequantize(q), W);
    EXPECT_NEAR(rel * rel, lift_mse(lift_matrix(16, 8, 0), 20000, 8), 0.004);

    const QuantizedTensor same = codec->quantize(W, {nullptr, 7, nullptr});
    for (std::size_t i = 0; i < q.parts.size(); ++i) EXPECT_TRUE(torch::equal(q.parts[i].data, same.parts[i].data));
    const QuantizedTensor other = codec->quantize(W, {nullptr, 8, nullptr});
    EXPECT_TRUE(torch::equal(q.part("M").data, other.part("M").data));
    EXPECT_FALSE(torch::equal(q.part("signs").data, other.part("signs").data));
}

TEST(LiftQuantCodec, ActivationScalingLowersOutputError) {
    // A few loud input channels: their weights should be coded more finely. Output error with independent
    // inputs of mean |x_j| = a_j is sum_j a_j^2 |E[:, j]|^2.
    const auto W = gaussian({256, 320}, 10);
    const auto a = torch::exp(1.5 * gaussian({320}, 11));
    const CalibStats calib{at::Tensor(), a};
    auto output_error = [&](const std::string& spec) {
        const auto codec = make_codec(spec);
        const auto E = codec->dequantize(codec->quantize(W, {&calib, 1, nullptr})) - W;
        return (E.square().sum(0) * a.square()).sum().item<double>();
    };
    EXPECT_LT(output_error("liftquant:D=16,d=8,awq"), 0.8 * output_error("liftquant:D=16,d=8"));
    EXPECT_NE(error_of([&] { make_codec("liftquant:awq")->quantize(W, {nullptr, 1, nullptr}); }).find("act_scale"),
              std::string::npos);
}

TEST(LiftQuantCodec, ErrorOnRealLayersFallsWithBits) {
    const auto model = load_model(test::real_model_dir());
    // 64 rows and the first 120 input columns (a multiple of 8 and 10) of one attention and one MLP layer.
    std::vector<at::Tensor> weights;
    for (const char* name : {"model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"})
        weights.push_back(
            model->original_weight(*model->layers().index_of(name)).slice(0, 0, 64).slice(1, 0, 120).contiguous());
    double previous = 1.0;
    for (const char* spec :
         {"liftquant:D=16,d=10", "liftquant:D=16,d=8", "liftquant:D=24,d=10", "liftquant:D=24,d=8"}) {
        const auto codec = make_codec(spec);
        double err = 0, norm = 0;
        for (const auto& W : weights) {
            err += (codec->dequantize(codec->quantize(W, {nullptr, 3, nullptr})) - W).square().sum().item<double>();
            norm += W.square().sum().item<double>();
        }
        const double rel = std::sqrt(err / norm);
        std::printf("%s: relative error %.4f\n", spec, rel);
        EXPECT_LT(rel, previous) << spec;
        previous = rel;
    }
}

TEST(LiftQuantCodec, AWidthDDoesNotDivideEndsInAShortChunk) {
    // 128 columns with d=10: twelve chunks of 10 and one of 8 zero-padded to 10, which costs a whole chunk's
    // D bits. The pad is never a weight: the result has 128 columns, and its error is that of a width d
    // divides (130: the same weights and two more columns).
    auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
    const auto W130 = torch::randn({16, 130}, gen) * torch::exp(0.35 * torch::randn({16, 130}, gen)) * 0.02;
    const auto W128 = W130.narrow(1, 0, 128).contiguous();
    for (const std::string spec : {"liftquant:D=24,d=10", "liftquant:D=16,d=10,had=0", "liftquant:D=20,d=8,awq"}) {
        const auto codec = make_codec(spec);
        const CalibStats calib{{}, torch::rand({128}, gen) + 0.5};
        const QuantizedTensor q = codec->quantize(W128, {&calib, 3, nullptr});
        const int64_t D = codec->spec().get_int("D"), d = codec->spec().get_int("d"), chunks = (128 + d - 1) / d;
        EXPECT_EQ(q.part("codes").bits, 16 * chunks * D) << spec;
        EXPECT_DOUBLE_EQ(q.code_bits_per_weight(), double(chunks * D) / 128) << spec;
        EXPECT_DOUBLE_EQ(codec->estimate_bits(16, 128).total_bits_per_weight, q.total_bits_per_weight()) << spec;
        const auto Wq = codec->dequantize(q);
        ASSERT_EQ(Wq.sizes(), W128.sizes()) << spec;
        const double err128 = ((Wq - W128).norm() / W128.norm()).item<double>();
        if (d == 10) {
            const CalibStats calib130{{}, torch::ones({130})};
            const auto q130 = codec->quantize(W130, {&calib130, 3, nullptr});
            const double err130 = ((codec->dequantize(q130) - W130).norm() / W130.norm()).item<double>();
            EXPECT_LT(err128, 1.2 * err130) << spec;
        }
        EXPECT_LT(err128, 0.6) << spec;
    }
}

TEST(LiftQuantCodec, BadSpecsAndShapesGiveClearErrors) {
    EXPECT_NE(error_of([] { make_codec("liftquant:D=16,d=16"); }).find("D must be greater than d"), std::string::npos);
    EXPECT_NE(error_of([] { make_codec("liftquant:D=20,d=24"); }).find("D must be greater than d"), std::string::npos);
    EXPECT_NE(error_of([] { make_codec("liftquant:D=32,d=10"); }).find("at most 20"), std::string::npos);
    EXPECT_NE(error_of([] { CodecSpec::parse("liftquant:D=8,d=8"); }).find("D must be in"), std::string::npos);
    const auto codec = make_codec("liftquant:D=24,d=10");
    EXPECT_NE(error_of([&] { codec->estimate_bits(0, 128); }).find("empty weight [0, 128]"), std::string::npos);
    CancelFlagProgress cancel;
    cancel.cancel();
    EXPECT_THROW(make_codec("liftquant:D=16,d=8")->quantize(torch::ones({8, 64}), {nullptr, 0, &cancel}), Cancelled);
}

TEST(LiftQuantCodec, ExampleSpecsParse) {
    EXPECT_EQ(CodecSpec::parse("liftquant:D=24,d=10").to_string(), "liftquant:D=24,d=10,had");
    const CodecSpec s = CodecSpec::parse("liftquant:D=16,d=8,had=0,awq");
    EXPECT_FALSE(s.get_flag("had"));
    EXPECT_TRUE(s.get_flag("awq"));
    EXPECT_EQ(CodecSpec::parse(s.to_string()), s);
}
