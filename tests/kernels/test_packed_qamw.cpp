// QAM-W (joint codebook) packed kernels against core's codec: dequantization equals Codec::dequantize bit
// for bit (fp32, and fp16 equals its .to(kHalf)); the GEMV (transforms moved onto x, one codebook lookup
// per pair) matches the core-dequantized weight times x in double within 1e-5 of sum_c |W[r][c] x[c]|.
// Signs, act_scale, block sizes down to 2, odd pair counts, real model layers, both CPU paths, bad views
// and CUDA against the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/hadamard.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_qamw.h"
#include "support/test_paths.h"

#ifdef QUENCH_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace quench;
namespace qk = quench::kernels;

namespace {

const uint16_t* half_ptr(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::Half>()); }

qk::QamwView qamw_view_of(const QuantizedTensor& q) {
    qk::QamwView v;
    v.rows = q.rows, v.cols = q.cols;
    v.k = static_cast<int>(q.spec.get_int("k"));
    v.block = q.spec.get_int("block");
    v.codes = q.part("codes").data.data_ptr<uint8_t>();
    v.code_bytes = q.part("codes").data.numel();
    v.norms = half_ptr(q.part("norms").data);
    v.codebook = half_ptr(q.part("codebook").data);
    if (q.spec.get_flag("act_scale")) v.act_scale = half_ptr(q.part("act_scale").data);
    if (q.spec.get_flag("signs")) {
        v.signs = true;
        v.sign_seed = static_cast<uint64_t>(q.part("sign_seed").data.item<int64_t>());
    }
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
    Case c{spec, codec->quantize(W, {&calib, seed * 7919, nullptr}), {}};
    c.ref = codec->dequantize(c.q);
    return c;
}

const std::vector<Case>& cases() {
    static const std::vector<Case> c = [] {
        const std::vector<std::pair<std::string, std::vector<int64_t>>> table = {
            {"qamw:k=7", {13, 256}},          {"qamw:k=8,signs", {9, 128}},       {"qamw:k=6,block=16,act_scale", {11, 48}},
            {"qamw:k=5,block=2", {7, 38}},    {"qamw:k=8,block=4,signs,act_scale", {5, 12}},
            {"qamw:k=4,block=64", {21, 320}}};
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
    const qk::QamwView v = qamw_view_of(c.q);
    std::vector<float> f32(c.q.numel(), -1.f);
    qk::qamw_dequantize_f32(v, f32.data(), o);
    const auto got = torch::from_blob(f32.data(), {c.q.rows, c.q.cols});
    EXPECT_TRUE(torch::equal(got, c.ref)) << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], max diff "
                                          << (got - c.ref).abs().max().item<float>();
    std::vector<uint16_t> f16(c.q.numel());
    qk::qamw_dequantize_f16(v, f16.data(), o);
    EXPECT_TRUE(torch::equal(torch::from_blob(f16.data(), {c.q.rows, c.q.cols}, torch::kShort),
                             c.ref.to(torch::kHalf).view(torch::kShort)))
        << c.spec << " fp16";
}

void expect_gemv_close(const Case& c, const qk::CpuOptions& o, int64_t batch) {
    const auto x = random_x(batch, c.q.cols, 30 + batch);
    std::vector<float> y(batch * c.q.rows, NAN);
    qk::qamw_gemv(qamw_view_of(c.q), x.data_ptr<float>(), y.data(), batch, o);
    EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << " [" << c.q.rows << ", " << c.q.cols << "], batch " << batch;
}

}  // namespace

TEST(PackedQamw, SignsAreCoreRandomSigns) {
    for (uint64_t seed : {0ull, 1ull, 123456789ull}) {
        const auto s = random_signs(1000, seed);
        for (int64_t c = 0; c < 1000; ++c) ASSERT_EQ(qk::qamw_sign(seed, c), s[c].item<float>()) << seed << ", " << c;
    }
}

TEST(PackedQamw, DequantizeEqualsCoreBitForBit) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths()) expect_dequant_exact(c, o);
}

TEST(PackedQamw, GemvMatchesDenseReference) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths())
            for (int64_t batch : {1, 2, 5, 8}) expect_gemv_close(c, o, batch);
}

TEST(PackedQamw, AgreesWithCoreOnTheRealModelLayers) {
    const auto model = LlamaModel::load(test::real_model_dir());
    for (std::size_t layer : model->layers().select_glob("model.layers.*")) {
        const Case c = make_case("qamw:k=8,block=128", model->original_weight(layer), layer);
        for (const auto& o : cpu_paths()) {
            expect_dequant_exact(c, o);
            expect_gemv_close(c, o, 1);
            expect_gemv_close(c, o, 8);
        }
    }
}

TEST(PackedQamw, RejectsInconsistentViews) {
    const qk::QamwView good = qamw_view_of(cases().front().q);  // k=7, block 128, [13, 256]
    std::vector<float> out(good.rows * good.cols);
    auto message = [&](qk::QamwView v) -> std::string {
        try {
            qk::qamw_dequantize_f32(v, out.data());
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    qk::QamwView v = good;
    v.block = 96;
    EXPECT_NE(message(v).find("block 96 is not a power of two dividing cols 256"), std::string::npos) << message(v);
    v = good;
    v.k = 17;
    EXPECT_NE(message(v).find("k=17 is outside 2..16"), std::string::npos) << message(v);
    v = good;
    v.code_bytes -= 1;
    EXPECT_NE(message(v).find("codes hold"), std::string::npos) << message(v);
    v = good;
    v.codebook = nullptr;
    EXPECT_NE(message(v).find("codebook pointer is null"), std::string::npos) << message(v);
}

TEST(PackedQamw, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    auto dev = [](const void* host, std::size_t bytes) {
        void* p = nullptr;
        if (cudaMalloc(&p, std::max<std::size_t>(bytes, 16)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
        if (host) cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice);
        return std::shared_ptr<void>(p, cudaFree);
    };
    for (const Case& c : cases()) {
        const qk::QamwView h = qamw_view_of(c.q);
        qk::QamwView d = h;
        const auto codes = dev(h.codes, h.code_bytes), norms = dev(h.norms, h.rows * 2),
                   book = dev(h.codebook, (std::size_t(4) << h.k)), act = dev(h.act_scale, h.act_scale ? h.cols * 2 : 0);
        d.codes = static_cast<uint8_t*>(codes.get()), d.norms = static_cast<uint16_t*>(norms.get());
        d.codebook = static_cast<uint16_t*>(book.get());
        d.act_scale = h.act_scale ? static_cast<uint16_t*>(act.get()) : nullptr;
        const int64_t n = c.q.numel();
        const auto out = dev(nullptr, n * 4);
        qk::qamw_dequantize_f32_cuda(d, static_cast<float*>(out.get()));
        std::vector<float> got(n), cpu(n);
        cudaMemcpy(got.data(), out.get(), n * 4, cudaMemcpyDeviceToHost);
        qk::qamw_dequantize_f32(h, cpu.data());
        EXPECT_EQ(got, cpu) << c.spec;
        qk::qamw_dequantize_f16_cuda(d, static_cast<uint16_t*>(out.get()));
        std::vector<uint16_t> got16(n), cpu16(n);
        cudaMemcpy(got16.data(), out.get(), n * 2, cudaMemcpyDeviceToHost);
        qk::qamw_dequantize_f16(h, cpu16.data());
        EXPECT_EQ(got16, cpu16) << c.spec;
        for (int64_t batch : {1, 8}) {
            const auto x = random_x(batch, c.q.cols, 5 + batch);
            const auto dx = dev(x.data_ptr<float>(), x.numel() * 4), dy = dev(nullptr, batch * c.q.rows * 4);
            qk::qamw_gemv_cuda(d, static_cast<float*>(dx.get()), static_cast<float*>(dy.get()), batch);
            std::vector<float> y(batch * c.q.rows);
            cudaMemcpy(y.data(), dy.get(), y.size() * 4, cudaMemcpyDeviceToHost);
            EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << ", batch " << batch;
        }
    }
#endif
}
