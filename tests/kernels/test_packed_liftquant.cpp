// LiftQuant packed kernels against core's codec: dequantization equals Codec::dequantize bit for bit (fp32,
// and fp16 equals its .to(kHalf)); the GEMV (transforms moved onto x, M projected once per chunk, sign sums)
// matches the core-dequantized weight times x in double within 1e-5 of sum_c |W[r][c] x[c]| (the projection
// and Hadamard reorder fp32 sums of 2 * cols terms). Hadamard on/off, awq, odd shapes, real model layers,
// both CPU paths, bad views and CUDA against the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "quant/codec.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_liftquant.h"
#include "support/test_paths.h"

#ifdef QUENCH_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace quench;
namespace qk = quench::kernels;

namespace {

const uint16_t* half_ptr(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::Half>()); }

qk::LiftView lift_view_of(const QuantizedTensor& q) {
    qk::LiftView v;
    v.rows = q.rows;
    v.cols = q.cols;
    v.D = static_cast<int>(q.spec.get_int("D"));
    v.d = static_cast<int>(q.spec.get_int("d"));
    v.codes = q.part("codes").data.data_ptr<uint8_t>();
    v.code_bytes = q.part("codes").data.numel();
    v.scales = half_ptr(q.part("scales").data);
    v.M = half_ptr(q.part("M").data);
    if (q.spec.get_flag("had")) v.signs = q.part("signs").data.data_ptr<uint8_t>();
    if (q.spec.get_flag("awq")) v.act_scale = half_ptr(q.part("act_scale").data);
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
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const CalibStats calib{{}, torch::rand({W.size(1)}, gen) * 2 + 0.05};
    Case c{spec, codec->quantize(W, {&calib, seed, nullptr}), {}};
    c.ref = codec->dequantize(c.q);
    return c;
}

// Hadamard blocks of 8, 32, 2, 128 and 4096 (cols & -cols), no Hadamard, awq, d not a power of two.
const std::vector<Case>& cases() {
    static const std::vector<Case> c = [] {
        const std::vector<std::pair<std::string, std::vector<int64_t>>> table = {
            {"liftquant:D=16,d=8", {13, 200}},          {"liftquant:D=16,d=8", {7, 96}},
            {"liftquant:D=16,d=10", {5, 130}},          {"liftquant:D=20,d=8,awq", {11, 128}},
            {"liftquant:D=16,d=10,had=0", {9, 250}},    {"liftquant:D=16,d=8,had=0,awq", {3, 64}},
            {"liftquant:D=16,d=8", {4, 4096}}};
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
    const qk::LiftView v = lift_view_of(c.q);
    std::vector<float> f32(c.q.numel(), -1.f);
    qk::lift_dequantize_f32(v, f32.data(), o);
    const auto got = torch::from_blob(f32.data(), {c.q.rows, c.q.cols});
    EXPECT_TRUE(torch::equal(got, c.ref)) << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], max diff "
                                          << (got - c.ref).abs().max().item<float>();
    std::vector<uint16_t> f16(c.q.numel());
    qk::lift_dequantize_f16(v, f16.data(), o);
    EXPECT_TRUE(torch::equal(torch::from_blob(f16.data(), {c.q.rows, c.q.cols}, torch::kShort),
                             c.ref.to(torch::kHalf).view(torch::kShort)))
        << c.spec << " fp16";
}

void expect_gemv_close(const Case& c, const qk::CpuOptions& o, int64_t batch) {
    const auto x = random_x(batch, c.q.cols, 50 + batch);
    std::vector<float> y(batch * c.q.rows, NAN);
    qk::lift_gemv(lift_view_of(c.q), x.data_ptr<float>(), y.data(), batch, o);
    EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch;
}

}  // namespace

TEST(PackedLiftQuant, DequantizeEqualsCoreBitForBit) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths()) expect_dequant_exact(c, o);
}

TEST(PackedLiftQuant, GemvMatchesDenseReference) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths())
            for (int64_t batch : {1, 2, 5, 8}) expect_gemv_close(c, o, batch);
}

TEST(PackedLiftQuant, GemvOfOneChunkIsTheHandComputedSignSum) {
    // One row, one chunk, no transforms: y = scale * sum_k y_k (M^T x)_k, worked out by hand.
    const uint16_t M[2 * 3] = {qk::float_to_half(1.f), qk::float_to_half(0.5f), qk::float_to_half(-2.f),
                               qk::float_to_half(0.25f), qk::float_to_half(4.f), qk::float_to_half(1.f)};
    const uint8_t codes[1] = {0b101};  // y = (+1, -1, +1)
    const uint16_t scale[1] = {qk::float_to_half(2.f)};
    qk::LiftView v;
    v.rows = 1, v.cols = 2, v.D = 3, v.d = 2, v.codes = codes, v.code_bytes = 1, v.scales = scale, v.M = M;
    const float x[2] = {3.f, -1.f};
    // W = scale * (M y)^T = 2 * (1 - 0.5 - 2, 0.25 - 4 + 1) = (-3, -5.5); W x = -9 + 5.5.
    float w[2], y[1];
    for (const auto& o : cpu_paths()) {
        qk::lift_dequantize_f32(v, w, o);
        EXPECT_EQ(w[0], -3.f);
        EXPECT_EQ(w[1], -5.5f);
        qk::lift_gemv(v, x, y, 1, o);
        EXPECT_EQ(y[0], -3.5f);
    }
}

TEST(PackedLiftQuant, AgreesWithCoreOnTheRealModelLayers) {
    const auto model = LlamaModel::load(test::real_model_dir());
    for (std::size_t layer : model->layers().select_glob("model.layers.*")) {
        const Case c = make_case("liftquant:D=16,d=8", model->original_weight(layer), layer);
        for (const auto& o : cpu_paths()) {
            expect_dequant_exact(c, o);
            expect_gemv_close(c, o, 1);
            expect_gemv_close(c, o, 8);
        }
    }
}

TEST(PackedLiftQuant, RejectsInconsistentViews) {
    const qk::LiftView good = lift_view_of(cases().front().q);
    std::vector<float> out(good.rows * good.cols), x(good.cols), y(good.rows);
    auto message = [&](qk::LiftView v) -> std::string {
        try {
            qk::lift_dequantize_f32(v, out.data());
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    qk::LiftView v = good;
    v.d = 7;
    EXPECT_NE(message(v).find("d=7 does not divide cols 200"), std::string::npos) << message(v);
    v = good;
    v.D = 8;
    EXPECT_NE(message(v).find("outside 1 <= d < D <= 32"), std::string::npos) << message(v);
    v = good;
    v.code_bytes /= 2;
    EXPECT_NE(message(v).find("codes hold"), std::string::npos) << message(v);
    v = good;
    v.M = nullptr;
    EXPECT_NE(message(v).find("M pointer is null"), std::string::npos) << message(v);
    EXPECT_THROW(qk::lift_gemv(good, x.data(), y.data(), 0), std::invalid_argument);
}

TEST(PackedLiftQuant, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    auto dev = [](const void* host, std::size_t bytes) {
        void* p = nullptr;
        if (cudaMalloc(&p, std::max<std::size_t>(bytes, 16)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
        if (host) cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice);
        return std::shared_ptr<void>(p, cudaFree);
    };
    for (const Case& c : cases()) {
        const qk::LiftView h = lift_view_of(c.q);
        qk::LiftView d = h;
        const auto codes = dev(h.codes, h.code_bytes), scales = dev(h.scales, h.rows * 2),
                   M = dev(h.M, h.d * h.D * 2), signs = dev(h.signs, h.signs ? (h.cols + 7) / 8 : 0),
                   act = dev(h.act_scale, h.act_scale ? h.cols * 2 : 0);
        d.codes = static_cast<uint8_t*>(codes.get()), d.scales = static_cast<uint16_t*>(scales.get());
        d.M = static_cast<uint16_t*>(M.get());
        d.signs = h.signs ? static_cast<uint8_t*>(signs.get()) : nullptr;
        d.act_scale = h.act_scale ? static_cast<uint16_t*>(act.get()) : nullptr;
        const int64_t n = c.q.numel();
        const auto out = dev(nullptr, n * 4);
        qk::lift_dequantize_f32_cuda(d, static_cast<float*>(out.get()));
        std::vector<float> got(n);
        cudaMemcpy(got.data(), out.get(), n * 4, cudaMemcpyDeviceToHost);
        std::vector<float> cpu(n);
        qk::lift_dequantize_f32(h, cpu.data());
        EXPECT_EQ(got, cpu) << c.spec;
        qk::lift_dequantize_f16_cuda(d, static_cast<uint16_t*>(out.get()));
        std::vector<uint16_t> got16(n), cpu16(n);
        cudaMemcpy(got16.data(), out.get(), n * 2, cudaMemcpyDeviceToHost);
        qk::lift_dequantize_f16(h, cpu16.data());
        EXPECT_EQ(got16, cpu16) << c.spec;
        for (int64_t batch : {1, 8}) {
            const auto x = random_x(batch, c.q.cols, 3 + batch);
            const auto dx = dev(x.data_ptr<float>(), x.numel() * 4), dy = dev(nullptr, batch * c.q.rows * 4);
            qk::lift_gemv_cuda(d, static_cast<float*>(dx.get()), static_cast<float*>(dy.get()), batch);
            std::vector<float> y(batch * c.q.rows);
            cudaMemcpy(y.data(), dy.get(), y.size() * 4, cudaMemcpyDeviceToHost);
            EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << ", batch " << batch;
        }
    }
#endif
}
