// Scalar-grid packed kernels against core's codecs: dequantization equals Codec::dequantize bit for bit
// (fp32, and fp16 equals its .to(kHalf)); the GEMV matches the core-dequantized weight times x in double
// within 2e-6 of sum_c |W[r][c] x[c]| (fp32 group sums: a few ulps of accumulated rounding). Both CPU paths,
// odd shapes with tails, the real model's layers, bad views, and the CUDA kernels against the CPU ones.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "quant/codec.h"
#include "quench_kernels/dense.h"
#include "quench_kernels/packed_grid.h"
#include "support/test_paths.h"

#ifdef QUENCH_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace quench;
namespace qk = quench::kernels;

namespace {

// The view of a stored rtn / gptq / paretoq tensor (the parts stay owned by q).
qk::GridView grid_view_of(const QuantizedTensor& q) {
    const CodecSpec& s = q.spec;
    const bool paretoq = s.codec() == "paretoq" || (s.codec() == "gptq" && s.get_choice("grid") == "paretoq");
    const double b = std::stod(s.values().at("b"));
    qk::GridView v;
    v.rows = q.rows;
    v.cols = q.cols;
    const at::Tensor& scales = q.part("scales").data;
    v.group = q.cols / scales.size(1);
    v.scales = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
    v.codes = q.part("codes").data.data_ptr<uint8_t>();
    v.code_bytes = q.part("codes").data.numel();
    if (paretoq) {
        if (b == 1) v.kind = qk::GridKind::Binary, v.bits = 1;
        else if (b == 2) v.kind = qk::GridKind::Seq, v.bits = 2;
        else if (b < 2) v.kind = qk::GridKind::Ternary, v.bits = 0;
        else v.kind = qk::GridKind::SymInt, v.bits = static_cast<int>(b);
    } else {
        v.bits = static_cast<int>(b);
        v.kind = s.get_flag("sym") ? qk::GridKind::SymInt : qk::GridKind::AsymInt;
        if (!s.get_flag("sym")) {
            v.zeros = q.part("zeros").data.data_ptr<uint8_t>();
            v.zero_bytes = q.part("zeros").data.numel();
        }
    }
    return v;
}

at::Tensor trained_like(int64_t rows, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randn({rows, cols}, gen) * torch::exp(0.35 * torch::randn({rows, cols}, gen)) * 0.02;
}

CalibStats random_hessian(int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto x = torch::randn({4 * cols, cols}, gen) * (0.2 + torch::rand({cols}, gen));
    return {x.t().matmul(x) / static_cast<double>(4 * cols), {}};
}

struct Case {
    std::string spec;
    QuantizedTensor q;
    at::Tensor ref;  // core's dequantization
};

Case make_case(const std::string& spec, const at::Tensor& W, uint64_t seed = 0) {
    const auto codec = make_codec(spec);
    const CalibStats calib = codec->needs_hessian() ? random_hessian(W.size(1), seed) : CalibStats{};
    Case c{spec, codec->quantize(W, {&calib, seed, nullptr}), {}};
    c.ref = codec->dequantize(c.q);
    return c;
}

// Odd shapes exercise the scalar tails after the 8-wide blocks, rows starting mid-byte (3-bit, trits) and
// group boundaries inside a byte.
std::vector<Case> random_cases() {
    std::vector<Case> out;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> table = {
        {"rtn:b=2,g=32", {19, 96}},        {"rtn:b=3,g=64", {13, 192}},       {"rtn:b=4,g=128", {9, 256}},
        {"rtn:b=8,g=0", {7, 1001}},        {"rtn:b=5,g=0", {11, 77}},         {"rtn:b=4,g=128,sym", {17, 384}},
        {"rtn:b=3,g=0,sym", {21, 131}},    {"rtn:b=2,g=0,sym", {5, 13}},      {"rtn:b=7,g=32,sym", {3, 64}},
        {"paretoq:b=1", {23, 1003}},       {"paretoq:b=1.58", {29, 517}},     {"paretoq:b=2", {31, 250}},
        {"paretoq:b=3", {6, 99}},          {"paretoq:b=4", {10, 4100}},       {"gptq:b=2,g=32,grid=paretoq", {12, 160}},
        {"gptq:b=1.58,g=64,grid=paretoq", {9, 128}}, {"gptq:b=3,g=64", {15, 128}}};
    uint64_t seed = 1;
    for (const auto& [spec, shape] : table) out.push_back(make_case(spec, trained_like(shape[0], shape[1], seed), seed)), ++seed;
    return out;
}

const std::vector<Case>& cases() {
    static const std::vector<Case> c = random_cases();
    return c;
}

std::vector<qk::CpuOptions> cpu_paths() {
    std::vector<qk::CpuOptions> out = {{1, qk::CpuPath::Scalar}, {3, qk::CpuPath::Scalar}};
    if (qk::cpu_has_avx2()) out.insert(out.end(), {{1, qk::CpuPath::Avx2}, {3, qk::CpuPath::Avx2}});
    return out;
}

std::string path_name(const qk::CpuOptions& o) {
    return std::string(o.path == qk::CpuPath::Avx2 ? "avx2" : "scalar") + ", " + std::to_string(o.threads) + " threads";
}

at::Tensor random_x(int64_t batch, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randn({batch, cols}, gen);
}

// Largest |y - W x| / sum_c |W[r][c] x[c]| over the outputs, W the core-dequantized weight, in double.
double gemv_rel_error(const at::Tensor& W, const at::Tensor& x, const std::vector<float>& y) {
    const auto Wd = W.to(torch::kDouble), xd = x.to(torch::kDouble);
    const auto ref = xd.matmul(Wd.t()), mag = xd.abs().matmul(Wd.abs().t()) + 1e-300;
    const auto got = torch::from_blob(const_cast<float*>(y.data()), ref.sizes(), torch::kFloat).to(torch::kDouble);
    return ((got - ref).abs() / mag).max().item<double>();
}

constexpr double kGemvTol = 2e-6;

void expect_dequant_exact(const Case& c, const qk::CpuOptions& o) {
    const qk::GridView v = grid_view_of(c.q);
    std::vector<float> f32(c.q.numel(), -1.f);
    qk::grid_dequantize_f32(v, f32.data(), o);
    EXPECT_TRUE(torch::equal(torch::from_blob(f32.data(), {c.q.rows, c.q.cols}), c.ref)) << c.spec << ", " << path_name(o);
    std::vector<uint16_t> f16(c.q.numel(), 0xffff);
    qk::grid_dequantize_f16(v, f16.data(), o);
    const auto want = c.ref.to(torch::kHalf).view(torch::kShort);
    EXPECT_TRUE(torch::equal(torch::from_blob(f16.data(), {c.q.rows, c.q.cols}, torch::kShort), want))
        << c.spec << " fp16, " << path_name(o);
}

void expect_gemv_close(const Case& c, const qk::CpuOptions& o, int64_t batch) {
    const qk::GridView v = grid_view_of(c.q);
    const auto x = random_x(batch, c.q.cols, 99 + batch);
    std::vector<float> y(batch * c.q.rows, NAN);
    qk::grid_gemv(v, x.data_ptr<float>(), y.data(), batch, o);
    EXPECT_LE(gemv_rel_error(c.ref, x, y), kGemvTol) << c.spec << ", batch " << batch << ", " << path_name(o);
}

}  // namespace

TEST(PackedGrid, HalfConversionsMatchTorchOnEveryPattern) {
    auto all = torch::arange(65536, torch::kInt).to(torch::kShort).view(torch::kHalf);
    const auto f = all.to(torch::kFloat);
    const int16_t* h = all.view(torch::kShort).data_ptr<int16_t>();
    const float* want = f.data_ptr<float>();
    for (int i = 0; i < 65536; ++i) {
        const float got = qk::half_to_float(static_cast<uint16_t>(h[i]));
        if (std::isnan(want[i])) EXPECT_TRUE(std::isnan(got)) << i;
        else ASSERT_EQ(std::memcmp(&got, &want[i], 4), 0) << "half pattern " << i;
    }
    // fp32 -> fp16 on values around every rounding regime: subnormal halves, ties, overflow to infinity.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    auto x = torch::cat({torch::randn({20000}, gen) * torch::exp(torch::randn({20000}, gen) * 6),
                         f.masked_select(torch::isfinite(f)) * (1 + std::ldexp(1.0, -11)),  // exact ties
                         torch::tensor({65504.f, 65519.f, 65520.f, 1e9f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 0.f, -0.f})});
    const auto want16 = x.to(torch::kHalf).view(torch::kShort);
    const float* xp = x.data_ptr<float>();
    const int16_t* w16 = want16.data_ptr<int16_t>();
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(qk::float_to_half(xp[i]), static_cast<uint16_t>(w16[i])) << xp[i];
}

TEST(PackedGrid, DequantizeEqualsCoreBitForBitOnBothPaths) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths()) expect_dequant_exact(c, o);
}

TEST(PackedGrid, GemvMatchesDenseReferenceOnOddShapes) {
    for (const Case& c : cases())
        for (const auto& o : cpu_paths())
            for (int64_t batch : {1, 2, 3, 8}) expect_gemv_close(c, o, batch);
}

TEST(PackedGrid, AgreesWithCoreOnTheRealModelLayers) {
    const auto model = LlamaModel::load(test::real_model_dir());
    const auto layers = model->layers().select_glob("model.layers.*");
    ASSERT_EQ(layers.size(), 14u);  // 2 blocks x (q, k, v, o, gate, up, down)
    for (const char* spec : {"rtn:b=4,g=128", "rtn:b=2,g=64,sym", "rtn:b=3,g=32", "paretoq:b=1.58", "paretoq:b=2"})
        for (std::size_t layer : layers) {
            const Case c = make_case(spec, model->original_weight(layer));
            for (const auto& o : cpu_paths()) {
                expect_dequant_exact(c, o);
                expect_gemv_close(c, o, 1);
                expect_gemv_close(c, o, 8);
            }
        }
}

TEST(PackedGrid, GemvOfGridValuedWeightsIsExactOnSmallIntegers) {
    // Rows k / 16 with max|k| = 7: the symmetric 4-bit fit recovers scale 1/16 and every k, and with integer
    // inputs each partial sum is exact in fp32, so y is the hand-computed value exactly.
    const auto k = torch::tensor({7, -1, 0, 3, -7, 2, 5, 1, 4, 7, -3, -6}, torch::kFloat).view({3, 4});
    const Case c = make_case("rtn:b=4,g=0,sym", k / 16);
    ASSERT_TRUE(torch::equal(c.ref, k / 16));
    const float x[4] = {1, -2, 3, 5};
    for (const auto& o : cpu_paths()) {
        float y[3];
        qk::grid_gemv(grid_view_of(c.q), x, y, 1, o);
        EXPECT_EQ(y[0], 24 / 16.f) << path_name(o);   // 7 + 2 + 0 + 15
        EXPECT_EQ(y[1], 9 / 16.f) << path_name(o);    // -7 - 4 + 15 + 5
        EXPECT_EQ(y[2], -49 / 16.f) << path_name(o);  // 4 - 14 - 9 - 30
    }
}

TEST(PackedGrid, RejectsInconsistentViews) {
    const Case& c = cases().front();  // rtn:b=2,g=32, [19, 96]
    const qk::GridView good = grid_view_of(c.q);
    std::vector<float> out(c.q.numel()), x(96), y(19);
    auto message = [&](qk::GridView v) -> std::string {
        try {
            qk::grid_gemv(v, x.data(), y.data(), 1);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    qk::GridView v = good;
    v.group = 40;
    EXPECT_NE(message(v).find("group 40 does not divide cols 96"), std::string::npos) << message(v);
    v = good;
    v.code_bytes -= 1;
    EXPECT_NE(message(v).find("codes hold"), std::string::npos) << message(v);
    v = good;
    v.zeros = nullptr;
    EXPECT_NE(message(v).find("zeros hold"), std::string::npos) << message(v);
    v = good;
    v.kind = qk::GridKind::Seq;
    EXPECT_NE(message(v).find("zeros given"), std::string::npos) << message(v);
    v = good;
    v.kind = qk::GridKind::Binary;
    EXPECT_NE(message(v).find("bits=2 does not fit"), std::string::npos) << message(v);
    EXPECT_THROW(qk::grid_gemv(good, x.data(), y.data(), 9), std::invalid_argument);
    EXPECT_NO_THROW(qk::grid_dequantize_f32(good, out.data()));
}

#ifdef QUENCH_HAVE_CUDA
namespace {

template <typename T>
struct DeviceCopy {
    T* p = nullptr;
    std::size_t n = 0;
    DeviceCopy(const T* host, std::size_t count) : n(count) {
        if (cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
        if (host) cudaMemcpy(p, host, n * sizeof(T), cudaMemcpyHostToDevice);
    }
    explicit DeviceCopy(std::size_t count) : DeviceCopy(nullptr, count) {}
    ~DeviceCopy() { cudaFree(p); }
    std::vector<T> host() const {
        std::vector<T> out(n);
        cudaMemcpy(out.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
        return out;
    }
};

struct DeviceGrid {
    qk::GridView view;
    DeviceCopy<uint8_t> codes, zeros;
    DeviceCopy<uint16_t> scales;
    explicit DeviceGrid(const qk::GridView& v)
        : view(v),
          codes(v.codes, v.code_bytes),
          zeros(v.zeros, v.zeros ? v.zero_bytes : 0),
          scales(v.scales, v.rows * (v.cols / v.group)) {
        view.codes = codes.p;
        view.zeros = v.zeros ? zeros.p : nullptr;
        view.scales = scales.p;
    }
};

}  // namespace
#endif

TEST(PackedGrid, CudaKernelsMatchTheCpuKernels) {
    if (qk::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
#ifdef QUENCH_HAVE_CUDA
    for (const Case& c : cases()) {
        const qk::GridView v = grid_view_of(c.q);
        const DeviceGrid d(v);
        DeviceCopy<float> out(c.q.numel());
        qk::grid_dequantize_f32_cuda(d.view, out.p);
        std::vector<float> cpu(c.q.numel());
        qk::grid_dequantize_f32(v, cpu.data());
        EXPECT_EQ(out.host(), cpu) << c.spec;
        DeviceCopy<uint16_t> out16(c.q.numel());
        qk::grid_dequantize_f16_cuda(d.view, out16.p);
        std::vector<uint16_t> cpu16(c.q.numel());
        qk::grid_dequantize_f16(v, cpu16.data());
        EXPECT_EQ(out16.host(), cpu16) << c.spec;
        for (int64_t batch : {1, 3, 8}) {
            const auto x = random_x(batch, c.q.cols, 7 + batch);
            const DeviceCopy<float> dx(x.data_ptr<float>(), x.numel());
            DeviceCopy<float> dy(batch * c.q.rows);
            qk::grid_gemv_cuda(d.view, dx.p, dy.p, batch);
            EXPECT_LE(gemv_rel_error(c.ref, x, dy.host()), kGemvTol) << c.spec << ", batch " << batch;
        }
    }
#endif
}
