// Block Hadamard: orthonormal (H H^T = I, norms kept), self-inverse, equal to the Sylvester matrix.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "quant/hadamard.h"

using namespace quench;

TEST(Hadamard, MatchesSylvesterMatrixAndIsSelfInverse) {
    // Sylvester H_4 / 2.
    auto h4 = torch::tensor({1, 1, 1, 1, 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1}, torch::kFloat32).view({4, 4}) / 2.0;
    EXPECT_TRUE(torch::allclose(hadamard_blocks(torch::eye(4), 4), h4));
    auto x = torch::randn({5, 256}, at::make_generator<at::CPUGeneratorImpl>(1));
    auto y = hadamard_blocks(x, 64);
    EXPECT_TRUE(torch::allclose(y.norm(2, 1), x.norm(2, 1), 1e-4));
    EXPECT_TRUE(torch::allclose(hadamard_blocks(y, 64), x, 1e-5, 1e-5));
    EXPECT_THROW(hadamard_blocks(x, 48), Error);
    EXPECT_THROW(hadamard_blocks(x, 512), Error);
}

TEST(Hadamard, RandomSignsAreSeededAndBalanced) {
    auto a = random_signs(10000, 7), b = random_signs(10000, 7), c = random_signs(10000, 8);
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_FALSE(torch::equal(a, c));
    EXPECT_TRUE((a.abs() == 1).all().item<bool>());
    EXPECT_LT(std::abs(a.sum().item<double>()), 400.0);  // ~4 standard deviations of a fair coin
}
