// The table-lookup int8 GEMV (packed_int8_lut.h) against core's codecs and the maddubs int8 path:
//  - the re-laid codes hold every code's bit planes where the header says (read back bit by bit), with the
//    tile's scales and zero codes beside them;
//  - the GEMV equals the same call without the table bit for bit, for every batch 1..8 and thread count,
//    on 1-, 2- and 3-bit grids of every kind (groups of 32, 64 and 128 columns, per-row groups of odd
//    widths: short last blocks, rows starting mid-byte), LiftQuant (blocks of 32, 64, 128, odd D) and
//    LC-QAT, with partial tiles (rows not a multiple of 32);
//  - it stays within the int8 paths' 2e-2 of sum |W x| of core's dequantized weight (that bound's reason is
//    in test_packed_int8.cpp), so it is a product with the weight, not only a copy of another kernel;
//  - codes without a table and tables made for another view are refused with the reason named.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <stdexcept>
#include <variant>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_int8_lut.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

const std::vector<PackedCase>& lut_cases() {
    static const std::vector<PackedCase> c = make_cases({
        // grids: asymmetric and symmetric 2-bit groups of 64, 32 and 128, SEQ and binary per row (odd widths:
        // a short last block, rows starting mid-byte), GPTQ on ParetoQ's grid
        {"rtn:b=2,g=64", 19, 192},
        {"rtn:b=2,g=32,sym", 33, 96},
        {"rtn:b=2,g=128", 40, 256},
        {"rtn:b=2,g=0,sym", 5, 13},
        {"paretoq:b=2", 31, 250},
        {"paretoq:b=1", 23, 1003},
        {"paretoq:b=2", 4, 4096},
        {"gptq:b=2,g=32,grid=paretoq", 12, 160},
        // 3 bits: three planes; asymmetric groups (zero codes of 3 bits), symmetric, ParetoQ's per-row grid
        // on an odd width (rows start mid-byte)
        {"rtn:b=3,g=64", 13, 192},
        {"rtn:b=3,g=128,sym", 35, 256},
        {"paretoq:b=3", 6, 99},
        // LiftQuant: sign columns (cols / d) D of 400 (blocks of 32, a short last one), 320 (64), 8192 (128),
        // 578 (odd D: rows start mid-byte), 768 with awq
        {"liftquant:D=16,d=8", 13, 200},
        {"liftquant:D=20,d=8,awq", 33, 128},
        {"liftquant:D=16,d=8", 4, 4096},
        {"liftquant:D=17,d=8", 45, 272},
        {"liftquant:D=24,d=10,awq", 31, 320},
        // LC-QAT with and without its Hadamard blocks
        {"lcqat:hessian=0", 24, 256},
        {"lcqat:had=0,hessian=0", 7, 44},
        {"lcqat:had=16", 9, 48},
        // a short last group of the row: 576 = 4 x 128 + 64, 200 = 3 x 64 + 8, 300 = 2 x 128 + 44 (empty
        // blocks in it)
        {"rtn:b=2,g=128", 9, 576},
        {"rtn:b=2,g=64,sym", 11, 200},
        {"rtn:b=3,g=128", 5, 300},
        // LiftQuant with a short last chunk (128 = 12 x 10 + 8, 100 = 12 x 8 + 4)
        {"liftquant:D=24,d=10", 6, 128},
        {"liftquant:D=16,d=8,awq", 5, 100},
    });
    return c;
}

qk::Int8Lut lut_of(const KernelView& v, const qk::CpuOptions& o = {}) {
    return std::visit(
        [&](const auto& w) -> qk::Int8Lut {
            if constexpr (std::is_same_v<std::decay_t<decltype(w)>, qk::QamwView>) throw std::logic_error("no table");
            else return qk::int8_lut(w, o);
        },
        v);
}

// The code grid the table covers: the view itself, or LiftQuant's and LC-QAT's grids over their projections.
qk::GridView grid_of(const KernelView& v, std::vector<uint16_t>& ones) {
    if (const auto* g = std::get_if<qk::GridView>(&v)) return *g;
    if (const auto* l = std::get_if<qk::LiftView>(&v)) return qk::detail::lift_sign_grid(*l);
    const auto& w = std::get<qk::LatticeView>(v);
    ones.assign(w.rows, qk::float_to_half(1.0f));
    return qk::detail::lattice_code_grid(w, ones.data());
}

// The int8 GEMV of each family, with the table or without it.
void gemv(const qk::GridView& w, const qk::Int8Lut* l, const float* x, float* y, int64_t b, const qk::CpuOptions& o) {
    if (l) qk::grid_gemv_int8(w, *l, x, y, b, o);
    else qk::grid_gemv_int8(w, x, y, b, o);
}
void gemv(const qk::LiftView& w, const qk::Int8Lut* l, const float* x, float* y, int64_t b, const qk::CpuOptions& o) {
    if (l) qk::lift_gemv_int8(w, *l, x, y, b, o);
    else qk::lift_gemv_int8(w, x, y, b, o);
}
void gemv(const qk::LatticeView& w, const qk::Int8Lut* l, const float* x, float* y, int64_t b, const qk::CpuOptions& o) {
    if (l) qk::lattice_gemv_int8(w, *l, x, y, b, o);
    else qk::lattice_gemv_int8(w, x, y, b, o);
}
void gemv(const qk::QamwView&, const qk::Int8Lut*, const float*, float*, int64_t, const qk::CpuOptions&) {
    throw std::logic_error("QAM-W has no int8 GEMV");
}

std::vector<float> run_lut(const KernelView& v, const qk::Int8Lut* lut, const at::Tensor& x, int64_t batch,
                           const qk::CpuOptions& o) {
    std::vector<float> y;
    std::visit(
        [&](const auto& w) {
            y.assign(batch * w.rows, NAN);
            gemv(w, lut, x.data_ptr<float>(), y.data(), batch, o);
        },
        v);
    return y;
}

}  // namespace

TEST(PackedInt8Lut, HoldsEveryCodesBitPlanesScalesAndZerosWhereTheHeaderSays) {
    for (const PackedCase& c : lut_cases()) {
        const KernelView v = kernel_view(c.q);
        std::vector<uint16_t> ones;
        const qk::GridView g = grid_of(v, ones);
        for (int threads : {1, 3}) {
            const qk::Int8Lut lut = lut_of(v, {threads, qk::CpuPath::Auto});
            ASSERT_EQ(lut.cols, g.cols) << c.spec;
            ASSERT_EQ(lut.block, qk::int8_block_cols(g)) << c.spec;
            const int64_t groups = (g.cols + g.group - 1) / g.group, per_group = (g.group + lut.block - 1) / lut.block;
            const int64_t pairs = lut.block / 8, block_bytes = g.bits * pairs * 32;
            const int64_t tiles = (g.rows + 31) / 32, tile_bytes = groups * per_group * block_bytes;
            ASSERT_EQ(static_cast<int64_t>(lut.codes.size()), tiles * tile_bytes) << c.spec;
            int64_t wrong = 0;
            for (int64_t r = 0; r < tiles * 32; ++r)
                for (int64_t k = 0; k < groups * per_group; ++k) {
                    const int64_t g0 = k / per_group, c0 = g0 * g.group + (k % per_group) * lut.block;
                    const int64_t group_width = std::min(g.group, g.cols - g0 * g.group);  // the last may be short
                    const int64_t width = std::max<int64_t>(0, std::min(lut.block, group_width - (k % per_group) * lut.block));
                    for (int p = 0; p < g.bits; ++p)
                        for (int64_t col = 0; col < lut.block; ++col) {
                            const int64_t j = r % 32, n = col / 4;
                            const uint8_t byte = lut.codes[(r / 32) * tile_bytes + k * block_bytes + p * pairs * 32 +
                                                           (n / 2) * 32 + (n % 2) * 16 + j % 16];
                            const int got = (byte >> ((j < 16 ? 0 : 4) + col % 4)) & 1;
                            const int want = r < g.rows && col < width
                                                 ? (qk::detail::code_at(g.codes, g.code_bytes, g.bits, r * g.cols + c0 + col) >> p) & 1
                                                 : 0;
                            wrong += got != want;
                        }
                    if (r < g.rows) {
                        const int64_t at = ((r / 32) * groups + g0) * 32 + r % 32;
                        wrong += lut.scales[at] != g.scales[r * groups + g0];
                        if (g.zeros) wrong += lut.zeros[at] != qk::detail::code_at(g.zeros, g.zero_bytes, g.bits, r * groups + g0);
                    }
                }
            EXPECT_EQ(wrong, 0) << c.spec << ", " << threads << " threads";
            EXPECT_EQ(lut.zeros.empty(), g.zeros == nullptr) << c.spec;
        }
    }
}

TEST(PackedInt8Lut, EqualsTheInt8PathBitForBit) {
    for (const PackedCase& c : lut_cases()) {
        const KernelView v = kernel_view(c.q);
        const qk::Int8Lut lut = lut_of(v);
        for (int64_t batch = 1; batch <= 8; ++batch) {
            const auto x = random_x(batch, c.q.cols, 110 + batch);
            const auto want = run_lut(v, nullptr, x, batch, {1, qk::CpuPath::Scalar});
            std::vector<qk::CpuOptions> paths = {{1, qk::CpuPath::Scalar}, {2, qk::CpuPath::Auto}};
            if (qk::cpu_has_avx2()) paths.insert(paths.end(), {{1, qk::CpuPath::Avx2}, {3, qk::CpuPath::Avx2}});
            for (const qk::CpuOptions& o : paths) {
                const auto got = run_lut(v, &lut, x, batch, o);
                EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0)
                    << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch << ", " << path_name(o);
            }
        }
    }
}

TEST(PackedInt8Lut, StaysCloseToTheDenseProduct) {
    for (const PackedCase& c : lut_cases()) {
        const KernelView v = kernel_view(c.q);
        const qk::Int8Lut lut = lut_of(v);
        for (int64_t batch : {1, 5, 8}) {
            const auto x = random_x(batch, c.q.cols, 120 + batch);
            EXPECT_LE(gemv_rel_error(c.ref, x, run_lut(v, &lut, x, batch, {2, qk::CpuPath::Auto})), 2e-2)
                << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch;
        }
    }
}

TEST(PackedInt8Lut, RefusesCodesWithoutATableAndTablesOfAnotherView) {
    for (const char* spec : {"rtn:b=4,g=32", "rtn:b=8,g=0", "paretoq:b=1.58"}) {
        const PackedCase c = make_cases({{spec, 4, 64}})[0];
        try {
            qk::int8_lut(std::get<qk::GridView>(kernel_view(c.q)));
            FAIL() << spec << " got a table";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("no lookup table"), std::string::npos) << e.what();
        }
    }
    const KernelView a = kernel_view(lut_cases()[0].q), b = kernel_view(lut_cases()[1].q);
    const qk::Int8Lut lut = lut_of(a);
    const auto x = random_x(1, 192, 1);
    std::vector<float> y(40);
    try {
        qk::grid_gemv_int8(std::get<qk::GridView>(b), lut, x.data_ptr<float>(), y.data(), 1);
        FAIL() << "a table of 19 rows was accepted for a 33-row view";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("19 x 192 codes of 2 bits in groups of 64"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("33 x 96 view of 2 bits in groups of 32"), std::string::npos) << e.what();
    }
    // LiftQuant's table does not fit LC-QAT (nor another LiftQuant shape).
    const qk::Int8Lut lift = lut_of(kernel_view(lut_cases()[11].q));
    const qk::LatticeView lc = std::get<qk::LatticeView>(kernel_view(lut_cases()[16].q));
    EXPECT_THROW(qk::lattice_gemv_int8(lc, lift, random_x(1, lc.cols, 2).data_ptr<float>(), y.data(), 1), std::invalid_argument);
    EXPECT_THROW(qk::grid_gemv_int8(std::get<qk::GridView>(a), lut, x.data_ptr<float>(), y.data(), 9), std::invalid_argument);
    // An empty table, and one whose codes were cut short.
    EXPECT_THROW(qk::grid_gemv_int8(std::get<qk::GridView>(a), qk::Int8Lut{}, x.data_ptr<float>(), y.data(), 1),
                 std::invalid_argument);
    qk::Int8Lut cut = lut;
    cut.codes.pop_back();
    EXPECT_THROW(qk::grid_gemv_int8(std::get<qk::GridView>(a), cut, x.data_ptr<float>(), y.data(), 1), std::invalid_argument);
}
