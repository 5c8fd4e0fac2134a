// Lloyd-Max design: the scalar Gaussian quantizers against Max (1960)'s published tables, the Rayleigh
// quantizer against closed forms and Monte Carlo, the 2-D Gaussian codebook against the scalar quantizer at
// equal rate and against the rate-distortion bound, and the grid nearest-neighbour search against brute force.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>

#include "common/error.h"
#include "quant/lloyd_max.h"

using namespace quench;

namespace {

// MSE per dimension of quantizing `x` [n, 2] to its nearest codeword (the search is checked against brute
// force below).
double codebook_mse_per_dim(const at::Tensor& x, const at::Tensor& C) {
    return (x - C.index_select(0, nearest_codeword_2d(x, C))).pow(2).mean().item<double>();
}

at::Tensor fresh_gaussian_pairs(int64_t n, uint64_t seed) {
    return torch::randn({n, 2}, at::make_generator<at::CPUGeneratorImpl>(seed));
}

}  // namespace

TEST(LloydMaxGaussian, MatchesMaxsPublishedTables) {
    // J. Max, "Quantizing for minimum distortion", IRE Trans. IT-6 (1960), Table I.
    const auto& b1 = lloyd_max_gaussian(2);
    ASSERT_EQ(b1.levels.size(), 2u);
    EXPECT_NEAR(b1.levels[1], 0.7979, 1e-4);
    EXPECT_NEAR(b1.levels[0], -0.7979, 1e-4);
    EXPECT_NEAR(b1.thresholds[0], 0.0, 1e-12);
    EXPECT_NEAR(b1.mse, 0.3634, 1e-4);
    // Closed forms for one bit: level sqrt(2/pi), MSE 1 - 2/pi.
    EXPECT_NEAR(b1.levels[1], std::sqrt(2.0 / M_PI), 1e-10);
    EXPECT_NEAR(b1.mse, 1.0 - 2.0 / M_PI, 1e-10);

    const auto& b2 = lloyd_max_gaussian(4);
    EXPECT_NEAR(b2.levels[2], 0.4528, 1e-4);
    EXPECT_NEAR(b2.levels[3], 1.510, 1e-3);
    EXPECT_NEAR(b2.levels[0], -1.510, 1e-3);
    EXPECT_NEAR(b2.thresholds[2], 0.9816, 1e-4);
    EXPECT_NEAR(b2.mse, 0.1175, 1e-4);

    const auto& b3 = lloyd_max_gaussian(8);
    EXPECT_NEAR(b3.levels[4], 0.2451, 1e-4);
    EXPECT_NEAR(b3.levels[5], 0.7560, 1e-4);
    EXPECT_NEAR(b3.levels[6], 1.344, 1e-3);
    EXPECT_NEAR(b3.levels[7], 2.152, 1e-3);
    EXPECT_NEAR(b3.mse, 0.03454, 1e-5);

    // Max lists 0.009497 for 16 levels; integrating the design numerically gives 0.0095010, so allow 1e-5.
    EXPECT_NEAR(lloyd_max_gaussian(16).mse, 0.009497, 1e-5);
}

TEST(LloydMaxGaussian, DesignMseAgreesWithMonteCarloAndCentroidsHold) {
    const auto& q = lloyd_max_gaussian(8);
    const auto x = torch::randn({1 << 22}, at::make_generator<at::CPUGeneratorImpl>(3), torch::kFloat64);
    const auto t = torch::tensor(q.thresholds, torch::kFloat64), y = torch::tensor(q.levels, torch::kFloat64);
    const auto idx = torch::bucketize(x, t);
    EXPECT_NEAR((x - y.index_select(0, idx)).pow(2).mean().item<double>(), q.mse, 3e-4);
    for (int i = 0; i < 8; ++i) {
        const auto cell = x.masked_select(idx.eq(i));
        EXPECT_NEAR(cell.mean().item<double>(), q.levels[i], 0.01) << "level " << i;
    }
    EXPECT_THROW(lloyd_max_gaussian(0), Error);
}

TEST(LloydMaxRayleigh, OneLevelIsTheMeanAndLargerDesignsMatchMonteCarlo) {
    // One level: E r = sqrt(pi/2), error Var r = 2 - pi/2.
    const auto& one = lloyd_max_rayleigh(1);
    EXPECT_NEAR(one.levels[0], std::sqrt(M_PI / 2.0), 1e-10);
    EXPECT_NEAR(one.mse, 2.0 - M_PI / 2.0, 1e-10);

    const auto p = torch::randn({1 << 22, 2}, at::make_generator<at::CPUGeneratorImpl>(4), torch::kFloat64);
    const auto r = p.pow(2).sum(1).sqrt();
    for (int L : {2, 4, 16}) {
        const auto& q = lloyd_max_rayleigh(L);
        ASSERT_EQ(q.levels.size(), static_cast<std::size_t>(L));
        EXPECT_GT(q.levels.front(), 0.0);
        const auto idx = torch::bucketize(r, torch::tensor(q.thresholds, torch::kFloat64));
        const auto y = torch::tensor(q.levels, torch::kFloat64);
        EXPECT_NEAR((r - y.index_select(0, idx)).pow(2).mean().item<double>(), q.mse, 0.02 * q.mse) << L;
        EXPECT_NEAR(r.masked_select(idx.eq(0)).mean().item<double>(), q.levels[0], 0.01) << L;
        if (L > 1) {
            EXPECT_LT(q.mse, lloyd_max_rayleigh(L / 2).mse);
        }
    }
}

TEST(GaussianCodebook2d, BeatsTheScalarQuantizerPerDimensionAtEqualBits) {
    const auto x = fresh_gaussian_pairs(1 << 18, 11);  // not the training samples
    for (int bits_per_dim : {2, 3, 4, 5, 6}) {
        const int64_t K = int64_t(1) << (2 * bits_per_dim);
        const at::Tensor& C = gaussian_codebook_2d(K);
        ASSERT_EQ(C.size(0), K);
        ASSERT_EQ(C.size(1), 2);
        const double d2 = codebook_mse_per_dim(x, C), d1 = lloyd_max_gaussian(1 << bits_per_dim).mse;
        std::cout << "[ mse/dim ] K=" << K << ": 2-D " << d2 << ", scalar " << bits_per_dim << "-bit " << d1 << "\n";
        EXPECT_LT(d2, 0.985 * d1) << "K=" << K << ": 2-D " << d2 << " vs scalar " << d1;
        // Shannon's bound for a unit Gaussian: D(R) = 2^{-2R}; no quantizer beats it.
        EXPECT_GT(d2, std::pow(2.0, -2.0 * bits_per_dim)) << "K=" << K;
        // High-rate theory (Zador, Fejes Toth): optimal 2-D cells are hexagons, D = G_hex (int p^{1/2})^2 / K
        // with G_hex = 5 / (36 sqrt 3) and (int p^{1/2})^2 = 8 pi for N(0, I2); tight once K is large.
        if (K >= 256) {
            EXPECT_NEAR(d2, 5.0 / (36.0 * std::sqrt(3.0)) * 8.0 * M_PI / K, 0.03 * d2) << "K=" << K;
        }
        // Centroid condition: E||c(p)||^2 = E||p||^2 - D (the codebook shrinks by exactly the error).
        const auto idx = nearest_codeword_2d(x, C);
        EXPECT_NEAR(C.index_select(0, idx).pow(2).sum(1).mean().item<double>(), 2.0 - 2.0 * d2, 0.01) << K;
        EXPECT_LT(C.mean(0).abs().max().item<double>(), 0.02) << K;
    }
}

TEST(GaussianCodebook2d, IsCachedAndMoreCodewordsGiveLessError) {
    const at::Tensor& a = gaussian_codebook_2d(64);
    EXPECT_EQ(a.data_ptr(), gaussian_codebook_2d(64).data_ptr());
    const auto x = fresh_gaussian_pairs(1 << 20, 12);
    double prev = 2.0;
    for (int64_t K : {16, 64, 256, 1024, 4096}) {
        const double d = codebook_mse_per_dim(x, gaussian_codebook_2d(K));
        EXPECT_LT(d, prev) << K;
        prev = d;
    }
    EXPECT_THROW(gaussian_codebook_2d(1), Error);
}

TEST(NearestCodeword2d, GridSearchEqualsBruteForceIncludingFarPoints) {
    for (int64_t K : {16, 256, 4096}) {
        const at::Tensor& C = gaussian_codebook_2d(K);
        auto x = fresh_gaussian_pairs(1 << 13, 13);
        x.slice(0, 0, 500).mul_(4.0);  // points beyond the codebook's box take the brute-force path
        const auto brute = (x.unsqueeze(1) - C.unsqueeze(0)).pow(2).sum(-1);
        const auto got = nearest_codeword_2d(x, C);
        // Compare distances rather than indices so an exact tie can't fail the test.
        const auto best = std::get<0>(brute.min(1));
        const auto mine = brute.gather(1, got.unsqueeze(1)).squeeze(1);
        EXPECT_TRUE(torch::equal(mine, best)) << "K=" << K;
    }
    EXPECT_THROW(nearest_codeword_2d(torch::zeros({4, 3}), gaussian_codebook_2d(16)), Error);
}
