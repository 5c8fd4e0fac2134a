// LC-QAT lattice packed kernels against core's codec: dequantization equals the scalar kernel bit for bit on
// every path, and Codec::dequantize (affine map and Hadamards as BLAS GEMMs, summed in a CPU-dependent order)
// within the bound of kernels/dequant_tolerance.h; fp16 is that fp32 result rounded. The GEMV (x projected
// through su, H_in and A^T, the unsigned 2-bit grid GEMV, then H_out and sv on the outputs) matches the
// core-dequantized weight times x in double within 1e-5 of sum_c |W[r][c] x[c]|. Both codebooks, Hadamard sizes, Hessian-aware codes, real model
// layers, both CPU paths, bad views and CUDA against the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernels/packed_test_support.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_lattice.h"

using namespace quench;
using namespace quench::test;
namespace qk = quench::kernels;

namespace {

constexpr GemvCheck kLatticeGemv{1e-5, 20, 9};

// Row blocks of 8, 1, 16 and 4 (the largest power of two <= had dividing rows), column blocks 128 and 32.
const std::vector<PackedCase>& lattice_cases() {
    static const std::vector<PackedCase> c = make_cases({
        {"lcqat:hessian=0", 24, 256},        {"lcqat", 13, 128},
        {"lcqat:cb=identity,hessian=0", 48, 256}, {"lcqat:had=32,hessian=0", 20, 96},
        {"lcqat:had=0,hessian=0", 7, 44},    {"lcqat:had=16", 9, 48}});
    return c;
}

std::vector<qk::CpuOptions> lattice_paths() { return cpu_paths(2); }

}  // namespace

TEST(PackedLattice, DequantizeMatchesCoreWithinTheSummationBound) {
    expect_dequant_matches(lattice_cases(), lattice_paths());
}

TEST(PackedLattice, GemvMatchesDenseReference) {
    expect_gemv_close(lattice_cases(), lattice_paths(), {1, 3, 8}, kLatticeGemv);
}

TEST(PackedLattice, IdentityCodebookWithoutTransformsIsTheAffineGrid) {
    // cb=identity, had=0: W[o][4j + m] = sv[o] * (s q_m - 1.5 s) * su[4j + m] with s = 1 / sqrt(1.25); by hand
    // for one byte 0b00011011 = (q0, q1, q2, q3) = (0, 1, 2, 3) and unit signs.
    const float A[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, b[4] = {-1.5f, -1.5f, -1.5f, -1.5f};
    const uint8_t codes[1] = {0b00011011};
    const uint16_t one = qk::float_to_half(1.f), two = qk::float_to_half(2.f);
    const uint16_t su[4] = {one, one, two, one}, sv[1] = {two};
    qk::LatticeView v;
    v.rows = 1, v.cols = 4, v.codes = codes, v.A = A, v.b = b, v.su = su, v.sv = sv;
    const float x[4] = {1, 2, 3, 4};
    for (const auto& o : lattice_paths()) {
        float w[4], y[1];
        qk::lattice_dequantize_f32(v, w, o);
        EXPECT_EQ(std::vector<float>(w, w + 4), (std::vector<float>{-3, -1, 2, 3})) << "2 * (q - 1.5) * su";
        qk::lattice_gemv(v, x, y, 1, o);
        EXPECT_EQ(y[0], -3 - 2 + 6 + 12);
    }
}

TEST(PackedLattice, AgreesWithCoreOnTheRealModelLayers) {
    expect_agrees_on_real_model({"lcqat:hessian=0"}, lattice_paths(), kLatticeGemv);
}

TEST(PackedLattice, RejectsInconsistentViews) {
    const qk::LatticeView good = lattice_view(lattice_cases().front().q);  // [24, 256], had 128 / 8
    std::vector<float> out(good.rows * good.cols);
    expect_rejected(good, [&](const qk::LatticeView& v) { qk::lattice_dequantize_f32(v, out.data()); },
                    {{[](qk::LatticeView& v) { v.cols = 254; }, "needs cols a positive multiple of 4"},
                     {[](qk::LatticeView& v) { v.had_out = 16; }, "had_out 16 is not a power of two dividing rows 24"},
                     {[](qk::LatticeView& v) { v.had_in = 96; }, "had_in 96"},
                     {[](qk::LatticeView& v) { v.sv = nullptr; }, "is null"}});
}

TEST(PackedLattice, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    for (const PackedCase& c : lattice_cases()) expect_cuda_matches_cpu(c, {1, 8}, kLatticeGemv);
#endif
}
