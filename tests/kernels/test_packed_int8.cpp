// The int8-activation GEMVs (packed_int8.h) against core's codecs:
//  - the AVX2 and the scalar path give the same bits (same integer block dots, same fp32 operations), for
//    every thread count and batch 1..8;
//  - scalar grids meet the activation-rounding bound of the header: each activation is off by at most half
//    its block's step d = max|x| / 127, so |y - W x| <= sum_c |W[r][c]| d(c) / 2, checked with 1e-3 slack
//    on the bound plus 2e-6 of sum_c |W x| for fp32 accumulation (the fp32 GEMV's tolerance);
//  - LiftQuant and LC-QAT quantize their projected activations, so that bound is not in terms of x; they
//    are checked against 2e-2 of sum_c |W[r][c] x[c]|, an empirical margin (Gaussian x: measured up to
//    9e-3 on these shapes; the int8 step of a block is max|p| / 127 and the row's rounding errors partly
//    cancel), as is the grids' second check;
//  - lossless activations (integers with 127 in every block) give the exact product.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quench_kernels/packed_int8.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

// Activation blocks of 128 (groups of 128), 64 and 32; per-row groups of odd widths (250, 4100,
// 1003: a short last block), tails, rows starting mid-byte (3-bit, trits,
// cols not a multiple of 32), every grid kind, 3-bit rows on byte boundaries (the fast 3-bit decoder
// with blocks of 128), the 8-bit widening path, and a short last group of the row (576 = 4 x 128 + 64,
// 200 = 3 x 64 + 8, 172 = 5 x 32 + 12: empty blocks in the last group).
const std::vector<PackedCase>& int8_grid_cases() {
    static const std::vector<PackedCase> c = make_cases({
        {"rtn:b=4,g=128", 9, 256},       {"rtn:b=4,g=128,sym", 17, 384},  {"rtn:b=2,g=64", 19, 192},
        {"rtn:b=2,g=32,sym", 7, 96},     {"rtn:b=3,g=64", 13, 192},       {"rtn:b=8,g=0", 7, 1001},
        {"rtn:b=5,g=0", 11, 77},         {"rtn:b=2,g=0,sym", 5, 13},      {"paretoq:b=1", 23, 1003},
        {"paretoq:b=1.58", 29, 517},     {"paretoq:b=2", 31, 250},        {"paretoq:b=4", 10, 4100},
        {"paretoq:b=3", 6, 99},          {"gptq:b=2,g=32,grid=paretoq", 12, 160},
        {"rtn:b=3,g=128,sym", 5, 512},   {"paretoq:b=3", 4, 256},  // 3-bit runs decoded 32 at a time
        {"rtn:b=2,g=32", 5, 640},        {"rtn:b=3,g=32", 7, 288},  // 8+ zero codes per row, 27-bit rows
        {"rtn:b=4,g=128", 9, 576},       {"rtn:b=2,g=64", 11, 200},       {"rtn:b=3,g=32,sym", 6, 172}});
    return c;
}

const std::vector<PackedCase>& int8_projected_cases() {
    static const std::vector<PackedCase> c = make_cases({
        {"liftquant:D=16,d=8", 13, 200},  {"liftquant:D=20,d=8,awq", 11, 128}, {"liftquant:D=16,d=10,had=0", 9, 250},
        {"liftquant:D=16,d=8", 4, 4096},  {"lcqat:hessian=0", 24, 256},        {"lcqat:had=0,hessian=0", 7, 44},
        {"lcqat:had=16", 9, 48},          {"liftquant:D=24,d=10", 6, 128}, {"liftquant:D=16,d=8,awq", 5, 100}});
    return c;
}

void gemv_int8(const KernelView& v, const float* x, float* y, int64_t batch, const qk::CpuOptions& o) {
    std::visit(
        [&](const auto& w) {
            using V = std::decay_t<decltype(w)>;
            if constexpr (std::is_same_v<V, qk::GridView>) qk::grid_gemv_int8(w, x, y, batch, o);
            else if constexpr (std::is_same_v<V, qk::LiftView>) qk::lift_gemv_int8(w, x, y, batch, o);
            else if constexpr (std::is_same_v<V, qk::LatticeView>) qk::lattice_gemv_int8(w, x, y, batch, o);
            else FAIL() << "no int8 GEMV for this view";
        },
        v);
}

std::vector<float> run_int8(const PackedCase& c, const at::Tensor& x, int64_t batch, const qk::CpuOptions& o) {
    std::vector<float> y(batch * c.q.rows, NAN);
    gemv_int8(kernel_view(c.q), x.data_ptr<float>(), y.data(), batch, o);
    return y;
}

// Largest |y - W x| / (sum_c |W[r][c]| d(c) / 2 * (1 + 1e-3) + 2e-6 sum_c |W[r][c] x[c]|): at most 1 when
// the bound holds. d(c): the step of c's block (blocks of `block` columns restarting at every group).
double bound_ratio(const at::Tensor& W, const at::Tensor& x, int64_t group, int64_t block, const std::vector<float>& y) {
    const int64_t batch = x.size(0), cols = x.size(1);
    auto d = torch::zeros({batch, cols}, torch::kDouble);
    const auto xa = x.abs().to(torch::kDouble);
    for (int64_t g0 = 0; g0 < cols; g0 += group) {
        const int64_t g1 = std::min(g0 + group, cols);  // a row's last group may be shorter
        for (int64_t c0 = g0; c0 < g1; c0 += block) {
            const int64_t c1 = std::min(c0 + block, g1);
            const auto amax = std::get<0>(xa.slice(1, c0, c1).max(1, true));
            d.slice(1, c0, c1).copy_((amax / 127.0).expand({batch, c1 - c0}));
        }
    }
    const auto Wd = W.to(torch::kDouble), xd = x.to(torch::kDouble);
    const auto err = (torch::from_blob(const_cast<float*>(y.data()), {batch, W.size(0)}).to(torch::kDouble) -
                      xd.matmul(Wd.t())).abs();
    const auto bound = d.matmul(Wd.abs().t()) * 0.5 * (1 + 1e-3) + 2e-6 * xd.abs().matmul(Wd.abs().t()) + 1e-300;
    return (err / bound).max().item<double>();
}

}  // namespace

TEST(PackedInt8, Avx2AndScalarAgreeBitForBit) {
    if (!qk::cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
    std::vector<const PackedCase*> all;
    for (const auto& c : int8_grid_cases()) all.push_back(&c);
    for (const auto& c : int8_projected_cases()) all.push_back(&c);
    for (const PackedCase* c : all)
        for (int64_t batch = 1; batch <= 8; ++batch) {
            const auto x = random_x(batch, c->q.cols, 70 + batch);
            const auto want = run_int8(*c, x, batch, {1, qk::CpuPath::Scalar});
            for (const qk::CpuOptions o : {qk::CpuOptions{3, qk::CpuPath::Scalar}, qk::CpuOptions{1, qk::CpuPath::Avx2},
                                           qk::CpuOptions{2, qk::CpuPath::Avx2}}) {
                const auto got = run_int8(*c, x, batch, o);
                EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0)
                    << c->spec << " [" << c->q.rows << ", " << c->q.cols << "], batch " << batch << ", " << path_name(o);
            }
        }
}

TEST(PackedInt8, GridsMeetTheActivationRoundingBound) {
    for (const PackedCase& c : int8_grid_cases()) {
        const auto v = std::get<qk::GridView>(kernel_view(c.q));
        const int64_t group = v.group, block = qk::int8_block_cols(v);
        for (const auto& o : cpu_paths(2))
            for (int64_t batch : {1, 3, 8}) {
                const auto x = random_x(batch, c.q.cols, 80 + batch);
                const auto y = run_int8(c, x, batch, o);
                EXPECT_LE(bound_ratio(c.ref, x, group, block, y), 1.0) << c.spec << ", batch " << batch << ", " << path_name(o);
                // Sanity on the size of that bound for Gaussian x: well under 2e-2 of sum |W x|.
                EXPECT_LE(gemv_rel_error(c.ref, x, y), 2e-2) << c.spec << ", batch " << batch << ", " << path_name(o);
            }
    }
}

TEST(PackedInt8, LiftQuantAndLatticeStayCloseToTheDenseProduct) {
    for (const PackedCase& c : int8_projected_cases())
        for (const auto& o : cpu_paths(2))
            for (int64_t batch : {1, 2, 8}) {
                const auto x = random_x(batch, c.q.cols, 90 + batch);
                EXPECT_LE(gemv_rel_error(c.ref, x, run_int8(c, x, batch, o)), 2e-2)
                    << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch << ", " << path_name(o);
            }
}

TEST(PackedInt8, LosslessActivationsGiveTheExactProduct) {
    // Rows k / 16 (scale 1/16 exact) and x with 127 in its only block: d = 1 and xq = x, so every step is
    // an exact integer or a power-of-two scaling.
    const auto k = torch::tensor({7, -1, 0, 3, -7, 2, 5, 1, 4, 7, -3, -6}, torch::kFloat).view({3, 4});
    const PackedCase c = make_case("rtn:b=4,g=0,sym", k / 16, 0, 0);
    ASSERT_TRUE(torch::equal(c.ref, k / 16));
    const auto x = torch::tensor({127.f, -2.f, 3.f, 5.f}).view({1, 4});
    for (const auto& o : cpu_paths(2)) {
        const auto y = run_int8(c, x, 1, o);
        EXPECT_EQ(y[0], 906 / 16.f) << path_name(o);   // 889 + 2 + 0 + 15
        EXPECT_EQ(y[1], -873 / 16.f) << path_name(o);  // -889 - 4 + 15 + 5
        EXPECT_EQ(y[2], 455 / 16.f) << path_name(o);   // 508 - 14 - 9 - 30
    }
}

TEST(PackedInt8, RejectsBadBatches) {
    const PackedCase& c = int8_grid_cases().front();
    std::vector<float> x(9 * c.q.cols), y(9 * c.q.rows);
    const auto v = std::get<qk::GridView>(kernel_view(c.q));
    EXPECT_TRUE(mentions(invalid_argument_of([&] { qk::grid_gemv_int8(v, x.data(), y.data(), 9); }), "batch 9"));
    EXPECT_TRUE(mentions(invalid_argument_of([&] { qk::grid_gemv_int8(v, x.data(), y.data(), 0); }), "batch 0"));
}
