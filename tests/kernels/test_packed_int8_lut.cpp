// LiftQuant's table-lookup GEMV (packed_lift_lut.h) against core's codec and the maddubs int8 path:
//  - the re-laid codes hold every row's sign bits where the header says (read back bit by bit);
//  - the GEMV equals lift_gemv_int8 without the table bit for bit, for every batch 1..8 and thread count,
//    on shapes with partial tiles (rows not a multiple of 32), short last activation blocks, blocks of
//    32, 64 and 128 columns and rows starting mid-byte (odd D);
//  - it stays within the int8 paths' 2e-2 of sum |W x| of core's dequantized weight (that bound's reason is
//    in test_packed_int8.cpp), so it is a product with the weight, not only a copy of another kernel;
//  - a table built for another view is refused with the shapes named.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <stdexcept>
#include <variant>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_lift_lut.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

// Sign columns per row ((cols / d) D) and the activation block the int8 path picks for them:
// 400 (blocks of 32, a short last one of 16), 320 (64), 8192 (128), 34 * 17 = 578 (32, odd D: rows start
// mid-byte), 32 * 24 = 768 (128) with awq; rows 1, 4, 9, 31, 33 and 45 (partial tiles of 32).
const std::vector<PackedCase>& lift_cases() {
    static const std::vector<PackedCase> c = make_cases({{"liftquant:D=16,d=8", 13, 200},
                                                         {"liftquant:D=20,d=8,awq", 33, 128},
                                                         {"liftquant:D=16,d=10,had=0", 9, 250},
                                                         {"liftquant:D=16,d=8", 4, 4096},
                                                         {"liftquant:D=17,d=8", 45, 272},
                                                         {"liftquant:D=24,d=10,awq", 31, 320},
                                                         {"liftquant:D=16,d=8", 1, 64}});
    return c;
}

qk::LiftView view_of(const PackedCase& c) { return std::get<qk::LiftView>(kernel_view(c.q)); }

std::vector<float> run(const qk::LiftView& v, const qk::LiftLut* lut, const at::Tensor& x, int64_t batch,
                       const qk::CpuOptions& o) {
    std::vector<float> y(batch * v.rows, NAN);
    if (lut) qk::lift_gemv_int8(v, *lut, x.data_ptr<float>(), y.data(), batch, o);
    else qk::lift_gemv_int8(v, x.data_ptr<float>(), y.data(), batch, o);
    return y;
}

}  // namespace

TEST(PackedLiftLut, HoldsEveryRowsSignBitsWhereTheHeaderSays) {
    for (const PackedCase& c : lift_cases()) {
        const qk::LiftView v = view_of(c);
        for (int threads : {1, 3}) {
            const qk::LiftLut lut = qk::lift_lut(v, {threads, qk::CpuPath::Auto});
            const int64_t plen = (v.cols / v.d) * v.D;
            ASSERT_EQ(lut.plen, plen) << c.spec;
            const int64_t blocks = (plen + lut.block - 1) / lut.block, positions = blocks * lut.block / 4;
            const int64_t tiles = (v.rows + 31) / 32, tile_bytes = positions * 16;
            ASSERT_EQ(static_cast<int64_t>(lut.bytes.size()), tiles * tile_bytes) << c.spec;
            int64_t wrong = 0;
            for (int64_t r = 0; r < tiles * 32; ++r)
                for (int64_t col = 0; col < positions * 4; ++col) {
                    const int64_t n = col / 4, j = r % 32;
                    const uint8_t byte = lut.bytes[(r / 32) * tile_bytes + (n / 2) * 32 + (n % 2) * 16 + j % 16];
                    const int got = (byte >> ((j < 16 ? 0 : 4) + col % 4)) & 1;
                    int want = 0;
                    if (r < v.rows && col < plen) {
                        const int64_t bit = r * plen + col;
                        want = (v.codes[bit / 8] >> (bit % 8)) & 1;
                    }
                    wrong += got != want;
                }
            EXPECT_EQ(wrong, 0) << c.spec << ", " << threads << " threads";
        }
    }
}

TEST(PackedLiftLut, EqualsTheInt8PathBitForBit) {
    for (const PackedCase& c : lift_cases()) {
        const qk::LiftView v = view_of(c);
        const qk::LiftLut lut = qk::lift_lut(v);
        for (int64_t batch = 1; batch <= 8; ++batch) {
            const auto x = random_x(batch, c.q.cols, 110 + batch);
            const auto want = run(v, nullptr, x, batch, {1, qk::CpuPath::Scalar});
            std::vector<qk::CpuOptions> paths = {{1, qk::CpuPath::Scalar}, {2, qk::CpuPath::Auto}};
            if (qk::cpu_has_avx2()) paths.insert(paths.end(), {{1, qk::CpuPath::Avx2}, {3, qk::CpuPath::Avx2}});
            for (const qk::CpuOptions& o : paths) {
                const auto got = run(v, &lut, x, batch, o);
                EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0)
                    << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch << ", " << path_name(o);
            }
        }
    }
}

TEST(PackedLiftLut, StaysCloseToTheDenseProduct) {
    for (const PackedCase& c : lift_cases()) {
        const qk::LiftView v = view_of(c);
        const qk::LiftLut lut = qk::lift_lut(v);
        for (int64_t batch : {1, 5, 8}) {
            const auto x = random_x(batch, c.q.cols, 120 + batch);
            EXPECT_LE(gemv_rel_error(c.ref, x, run(v, &lut, x, batch, {2, qk::CpuPath::Auto})), 2e-2)
                << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch;
        }
    }
}

TEST(PackedLiftLut, RefusesATableOfAnotherShape) {
    const qk::LiftView a = view_of(lift_cases()[0]), b = view_of(lift_cases()[4]);
    const qk::LiftLut lut = qk::lift_lut(a);
    const auto x = random_x(1, b.cols, 1);
    std::vector<float> y(b.rows);
    try {
        qk::lift_gemv_int8(b, lut, x.data_ptr<float>(), y.data(), 1);
        FAIL() << "a 13-row table was accepted for a 45-row view";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("13 x 400"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("45 x 578"), std::string::npos) << e.what();
    }
    EXPECT_THROW(qk::lift_gemv_int8(a, lut, x.data_ptr<float>(), y.data(), 9), std::invalid_argument);
}
