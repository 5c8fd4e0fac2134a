// LC-QAT lattice packed kernels against core's codec: dequantization equals Codec::dequantize bit for bit
// (fp32, and fp16 equals its .to(kHalf)); the GEMV (x projected through su, H_in and A^T, the unsigned
// 2-bit grid GEMV, then H_out and sv on the outputs) matches the core-dequantized weight times x in double
// within 1e-5 of sum_c |W[r][c] x[c]|. Both codebooks, Hadamard sizes, Hessian-aware codes, real model
// layers, both CPU paths, bad views and CUDA against the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/lcqat_lattice.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_lattice.h"
#include "support/test_paths.h"

#ifdef QUENCH_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace quench;
namespace qk = quench::kernels;

namespace {

const uint16_t* half_ptr(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::Half>()); }

qk::LatticeView lattice_view_of(const QuantizedTensor& q) {
    const LcqatBlocks blocks = lcqat_blocks(q.spec, q.rows, q.cols);
    qk::LatticeView v;
    v.rows = q.rows, v.cols = q.cols, v.had_in = blocks.in, v.had_out = blocks.out;
    v.codes = q.part("codes").data.data_ptr<uint8_t>();
    v.A = q.part("A").data.data_ptr<float>();
    v.b = q.part("b").data.data_ptr<float>();
    v.su = half_ptr(q.part("su").data);
    v.sv = half_ptr(q.part("sv").data);
    return v;
}

at::Tensor trained_like(int64_t rows, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randn({rows, cols}, gen) * torch::exp(0.35 * torch::randn({rows, cols}, gen)) * 0.02;
}

struct Case {
    std::string spec;
    QuantizedTensor q;
    at::Tensor ref;
};

Case make_case(const std::string& spec, const at::Tensor& W, uint64_t seed) {
    const auto codec = make_codec(spec);
    CalibStats calib;
    if (codec->needs_hessian()) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        const auto x = torch::randn({4 * W.size(1), W.size(1)}, gen) * (0.2 + torch::rand({W.size(1)}, gen));
        calib.hessian = x.t().matmul(x) / static_cast<double>(x.size(0));
    }
    Case c{spec, codec->quantize(W, {&calib, seed, nullptr}), {}};
    c.ref = codec->dequantize(c.q);
    return c;
}

// Row blocks of 8, 1, 16 and 4 (the largest power of two <= had dividing rows), column blocks 128 and 32.
const std::vector<Case>& cases() {
    static const std::vector<Case> c = [] {
        const std::vector<std::pair<std::string, std::vector<int64_t>>> table = {
            {"lcqat:hessian=0", {24, 256}},        {"lcqat", {13, 128}},
            {"lcqat:cb=identity,hessian=0", {48, 256}}, {"lcqat:had=32,hessian=0", {20, 96}},
            {"lcqat:had=0,hessian=0", {7, 44}},    {"lcqat:had=16", {9, 48}}};
        std::vector<Case> out;
        uint64_t seed = 1;
        for (const auto& [spec, shape] : table) out.push_back(make_case(spec, trained_like(shape[0], shape[1], seed), seed)), ++seed;
        return out;
    }();
    return c;
}

std::vector<qk::CpuOptions> cpu_paths() {
    std::vector<qk::CpuOptions> out = {{1, qk::CpuPath::Scalar}, {3, qk::CpuPath::Scalar}};
    if (qk::cpu_has_avx2()) out.insert(out.end(), {{1, qk::CpuPath::Avx2}, {2, qk::CpuPath::Avx2}});
    return out;
}

at::Tensor random_x(int64_t batch, int64_t cols, uint64_t seed) {
    return torch::randn({batch, cols}, at::make_generator<at::CPUGeneratorImpl>(seed));
}

double gemv_rel_error(const at::Tensor& W, const at::Tensor& x, const std::vector<float>& y) {
    const auto Wd = W.to(torch::kDouble), xd = x.to(torch::kDouble);
    const auto ref = xd.matmul(Wd.t()), mag = xd.abs().matmul(Wd.abs().t()) + 1e-300;
    const auto got = torch::from_blob(const_cast<float*>(y.data()), ref.sizes(), torch::kFloat).to(torch::kDouble);
    return ((got - ref).abs() / mag).max().item<double>();
}

constexpr double kGemvTol = 1e-5;

void expect_dequant_exact(const Case& c, const qk::CpuOptions& o) {
    const qk::LatticeView v = lattice_view_of(c.q);
    std::vector<float> f32(c.q.numel(), -1.f);
    qk::lattice_dequantize_f32(v, f32.data(), o);
    const auto got = torch::from_blob(f32.data(), {c.q.rows, c.q.cols});
    EXPECT_TRUE(torch::equal(got, c.ref)) << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], max diff "
                                          << (got - c.ref).abs().max().item<float>();
    std::vector<uint16_t> f16(c.q.numel());
    qk::lattice_dequantize_f16(v, f16.data(), o);
    EXPECT_TRUE(torch::equal(torch::from_blob(f16.data(), {c.q.rows, c.q.cols}, torch::kShort),
                             c.ref.to(torch::kHalf).view(torch::kShort)))
        << c.spec << " fp16";
}

void expect_gemv_close(const Case& c, const qk::CpuOptions& o, int64_t batch) {
    const auto x = random_x(batch, c.q.cols, 20 + batch);
    std::vector<float> y(batch * c.q.rows, NAN);
    qk::lattice_gemv(lattice_view_of(c.q), x.data_ptr<float>(), y.data(), batch, o);
    EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch;
}

}  // namespace

TEST(PackedLattice, DequantizeEqualsCoreBitForBit) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths()) expect_dequant_exact(c, o);
}

TEST(PackedLattice, GemvMatchesDenseReference) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths())
            for (int64_t batch : {1, 3, 8}) expect_gemv_close(c, o, batch);
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
    for (const auto& o : cpu_paths()) {
        float w[4], y[1];
        qk::lattice_dequantize_f32(v, w, o);
        EXPECT_EQ(std::vector<float>(w, w + 4), (std::vector<float>{-3, -1, 2, 3})) << "2 * (q - 1.5) * su";
        qk::lattice_gemv(v, x, y, 1, o);
        EXPECT_EQ(y[0], -3 - 2 + 6 + 12);
    }
}

TEST(PackedLattice, AgreesWithCoreOnTheRealModelLayers) {
    const auto model = LlamaModel::load(test::real_model_dir());
    for (std::size_t layer : model->layers().select_glob("model.layers.*")) {
        const Case c = make_case("lcqat:hessian=0", model->original_weight(layer), layer);
        for (const auto& o : cpu_paths()) {
            expect_dequant_exact(c, o);
            expect_gemv_close(c, o, 1);
            expect_gemv_close(c, o, 8);
        }
    }
}

TEST(PackedLattice, RejectsInconsistentViews) {
    const qk::LatticeView good = lattice_view_of(cases().front().q);  // [24, 256], had 128 / 8
    std::vector<float> out(good.rows * good.cols);
    auto message = [&](qk::LatticeView v) -> std::string {
        try {
            qk::lattice_dequantize_f32(v, out.data());
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    qk::LatticeView v = good;
    v.cols = 254;
    EXPECT_NE(message(v).find("needs cols a positive multiple of 4"), std::string::npos) << message(v);
    v = good;
    v.had_out = 16;
    EXPECT_NE(message(v).find("had_out 16 is not a power of two dividing rows 24"), std::string::npos) << message(v);
    v = good;
    v.had_in = 96;
    EXPECT_NE(message(v).find("had_in 96"), std::string::npos) << message(v);
    v = good;
    v.sv = nullptr;
    EXPECT_NE(message(v).find("is null"), std::string::npos) << message(v);
}

TEST(PackedLattice, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    auto dev = [](const void* host, std::size_t bytes) {
        void* p = nullptr;
        if (cudaMalloc(&p, std::max<std::size_t>(bytes, 16)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
        if (host) cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice);
        return std::shared_ptr<void>(p, cudaFree);
    };
    for (const Case& c : cases()) {
        const qk::LatticeView h = lattice_view_of(c.q);
        qk::LatticeView d = h;
        const auto codes = dev(h.codes, h.rows * h.cols / 4), A = dev(h.A, 64), b = dev(h.b, 16),
                   su = dev(h.su, h.cols * 2), sv = dev(h.sv, h.rows * 2);
        d.codes = static_cast<uint8_t*>(codes.get()), d.A = static_cast<float*>(A.get()), d.b = static_cast<float*>(b.get());
        d.su = static_cast<uint16_t*>(su.get()), d.sv = static_cast<uint16_t*>(sv.get());
        const int64_t n = c.q.numel();
        const auto out = dev(nullptr, n * 4);
        qk::lattice_dequantize_f32_cuda(d, static_cast<float*>(out.get()));
        std::vector<float> got(n);
        cudaMemcpy(got.data(), out.get(), n * 4, cudaMemcpyDeviceToHost);
        std::vector<float> cpu(n);
        qk::lattice_dequantize_f32(h, cpu.data());
        EXPECT_EQ(got, cpu) << c.spec;
        qk::lattice_dequantize_f16_cuda(d, static_cast<uint16_t*>(out.get()));
        std::vector<uint16_t> got16(n), cpu16(n);
        cudaMemcpy(got16.data(), out.get(), n * 2, cudaMemcpyDeviceToHost);
        qk::lattice_dequantize_f16(h, cpu16.data());
        EXPECT_EQ(got16, cpu16) << c.spec;
        for (int64_t batch : {1, 8}) {
            const auto x = random_x(batch, c.q.cols, 9 + batch);
            const auto dx = dev(x.data_ptr<float>(), x.numel() * 4), dy = dev(nullptr, batch * c.q.rows * 4);
            qk::lattice_gemv_cuda(d, static_cast<float*>(dx.get()), static_cast<float*>(dy.get()), batch);
            std::vector<float> y(batch * c.q.rows);
            cudaMemcpy(y.data(), dy.get(), y.size() * 4, cudaMemcpyDeviceToHost);
            EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << ", batch " << batch;
        }
    }
#endif
}
