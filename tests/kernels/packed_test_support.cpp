#include "kernels/packed_test_support.h"
#include "io/model_loading.h"
#include "kernels/dequant_tolerance.h"

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <stdexcept>

#include "model/llama_model.h"
#include "quant/codec.h"
#include "support/test_paths.h"

#ifdef QUENCH_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace quench::test {
namespace qk = quench::kernels;

namespace {

// A family's CPU kernels, picked by overloading on the view type.
template <typename View>
struct CpuKernels {
    void (*f32)(const View&, float*, const qk::CpuOptions&);
    void (*f16)(const View&, uint16_t*, const qk::CpuOptions&);
    void (*gemv)(const View&, const float*, float*, int64_t, const qk::CpuOptions&);
};
CpuKernels<qk::GridView> cpu_kernels(const qk::GridView&) {
    return {qk::grid_dequantize_f32, qk::grid_dequantize_f16, qk::grid_gemv};
}
CpuKernels<qk::LiftView> cpu_kernels(const qk::LiftView&) {
    return {qk::lift_dequantize_f32, qk::lift_dequantize_f16, qk::lift_gemv};
}
CpuKernels<qk::LatticeView> cpu_kernels(const qk::LatticeView&) {
    return {qk::lattice_dequantize_f32, qk::lattice_dequantize_f16, qk::lattice_gemv};
}
CpuKernels<qk::QamwView> cpu_kernels(const qk::QamwView&) {
    return {qk::qamw_dequantize_f32, qk::qamw_dequantize_f16, qk::qamw_gemv};
}

std::string shape_of(const PackedCase& c) {
    return " [" + std::to_string(c.q.rows) + ", " + std::to_string(c.q.cols) + "]";
}

}  // namespace

PackedCase make_case(const std::string& spec, const at::Tensor& W, uint64_t seed, uint64_t quantize_seed) {
    const auto codec = make_codec(spec);
    const int64_t cols = W.size(1);
    CalibStats calib;
    if (codec->needs_hessian()) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        const auto x = torch::randn({4 * cols, cols}, gen) * (0.2 + torch::rand({cols}, gen));
        calib.hessian = x.t().matmul(x) / static_cast<double>(4 * cols);
    }
    if (codec->needs_act_scale()) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        calib.act_scale = torch::rand({cols}, gen) * 2 + 0.05;
    }
    PackedCase c{spec, codec->quantize(W, {&calib, quantize_seed, nullptr}), {}};
    c.ref = codec->dequantize(c.q);
    return c;
}

std::vector<PackedCase> make_cases(const std::vector<CaseShape>& table, uint64_t quantize_seed_factor) {
    std::vector<PackedCase> out;
    uint64_t seed = 1;
    for (const CaseShape& s : table) {
        out.push_back(make_case(s.spec, trained_like(s.rows, s.cols, seed), seed, seed * quantize_seed_factor));
        ++seed;
    }
    return out;
}

std::vector<qk::CpuOptions> cpu_paths(int avx2_threads) {
    std::vector<qk::CpuOptions> out = {{1, qk::CpuPath::Scalar}, {3, qk::CpuPath::Scalar}};
    if (qk::cpu_has_avx2()) out.insert(out.end(), {{1, qk::CpuPath::Avx2}, {avx2_threads, qk::CpuPath::Avx2}});
    return out;
}

std::string path_name(const qk::CpuOptions& o) {
    return std::string(o.path == qk::CpuPath::Avx2 ? "avx2" : "scalar") + ", " + std::to_string(o.threads) + " threads";
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

void dequantize_f32(const KernelView& v, float* out, const qk::CpuOptions& o) {
    std::visit([&](const auto& w) { cpu_kernels(w).f32(w, out, o); }, v);
}

void dequantize_f16(const KernelView& v, uint16_t* out, const qk::CpuOptions& o) {
    std::visit([&](const auto& w) { cpu_kernels(w).f16(w, out, o); }, v);
}

void gemv(const KernelView& v, const float* x, float* y, int64_t batch, const qk::CpuOptions& o) {
    std::visit([&](const auto& w) { cpu_kernels(w).gemv(w, x, y, batch, o); }, v);
}

void expect_dequant_matches(const PackedCase& c, const qk::CpuOptions& o) {
    const KernelView v = kernel_view(c.q);
    std::vector<float> f32(c.q.numel(), -1.f), base(c.q.numel(), -2.f);
    dequantize_f32(v, f32.data(), o);
    // The kernels fix their own order of operations (an AVX2 lane runs the scalar chain), so every path and
    // thread count gives the scalar single-thread bits, on any CPU.
    dequantize_f32(v, base.data(), {1, qk::CpuPath::Scalar});
    EXPECT_EQ(f32, base) << c.spec << shape_of(c) << ", " << path_name(o) << " against scalar, 1 thread";
    // fp16 output is the fp32 result rounded once: the same value rounds to the same bits.
    std::vector<uint16_t> f16(c.q.numel(), 0xffff), want16(c.q.numel());
    dequantize_f16(v, f16.data(), o);
    for (std::size_t i = 0; i < f32.size(); ++i) want16[i] = qk::float_to_half(f32[i]);
    EXPECT_EQ(f16, want16) << c.spec << shape_of(c) << " fp16, " << path_name(o);

    const auto got = torch::from_blob(f32.data(), {c.q.rows, c.q.cols});
    const at::Tensor tol = dequant_tolerance(v);
    if (!tol.defined()) {
        EXPECT_TRUE(torch::equal(got, c.ref)) << c.spec << shape_of(c) << ", " << path_name(o) << ", max diff "
                                              << (got - c.ref).abs().max().item<float>();
        return;
    }
    const auto diff = (got.to(torch::kDouble) - c.ref.to(torch::kDouble)).abs();
    EXPECT_TRUE((diff <= tol).all().item<bool>())
        << c.spec << shape_of(c) << ", " << path_name(o) << ": max diff " << diff.max().item<double>()
        << ", largest diff / bound " << (diff / tol.clamp_min(1e-300)).max().item<double>();
}

void expect_gemv_close(const PackedCase& c, const qk::CpuOptions& o, int64_t batch, const GemvCheck& g) {
    const auto x = random_x(batch, c.q.cols, g.x_seed + batch);
    std::vector<float> y(batch * c.q.rows, NAN);
    gemv(kernel_view(c.q), x.data_ptr<float>(), y.data(), batch, o);
    EXPECT_LE(gemv_rel_error(c.ref, x, y), g.tol) << c.spec << shape_of(c) << ", batch " << batch << ", " << path_name(o);
}

void expect_dequant_matches(const std::vector<PackedCase>& cases, const std::vector<qk::CpuOptions>& paths) {
    for (const PackedCase& c : cases)
        for (const auto& o : paths) expect_dequant_matches(c, o);
}

void expect_gemv_close(const std::vector<PackedCase>& cases, const std::vector<qk::CpuOptions>& paths,
                       const std::vector<int64_t>& batches, const GemvCheck& g) {
    for (const PackedCase& c : cases)
        for (const auto& o : paths)
            for (int64_t batch : batches) expect_gemv_close(c, o, batch, g);
}

void expect_agrees_on_real_model(const std::vector<std::string>& specs, const std::vector<qk::CpuOptions>& paths,
                                 const GemvCheck& g, uint64_t quantize_seed_factor) {
    const auto model = load_model(real_model_dir());
    const auto layers = model->layers().select_glob("model.layers.*");
    ASSERT_EQ(layers.size(), 14u);  // 2 blocks x (q, k, v, o, gate, up, down)
    for (const std::string& spec : specs)
        for (std::size_t layer : layers) {
            const PackedCase c = make_case(spec, model->original_weight(layer), layer, layer * quantize_seed_factor);
            for (const auto& o : paths) {
                expect_dequant_matches(c, o);
                expect_gemv_close(c, o, 1, g);
                expect_gemv_close(c, o, 8, g);
            }
        }
}

std::string invalid_argument_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

::testing::AssertionResult mentions(const std::string& message, const std::string& part) {
    if (message.find(part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "'" << message << "' does not mention '" << part << "'";
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
    DeviceCopy(const DeviceCopy&) = delete;
    DeviceCopy& operator=(const DeviceCopy&) = delete;
    ~DeviceCopy() { cudaFree(p); }
    std::vector<T> host() const {
        std::vector<T> out(n);
        cudaMemcpy(out.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
        return out;
    }
};

// Device copies of a view's parts, kept alive as long as this object.
class DeviceParts {
public:
    template <typename T>
    const T* copy(const T* host, int64_t count) {
        if (!host) return nullptr;
        auto d = std::make_shared<DeviceCopy<T>>(host, static_cast<std::size_t>(count));
        keep_.push_back(d);
        return d->p;
    }

private:
    std::vector<std::shared_ptr<void>> keep_;
};

// The view with every part pointer moved to a device copy.
qk::GridView on_device(qk::GridView v, DeviceParts& d) {
    v.codes = d.copy(v.codes, v.code_bytes), v.zeros = d.copy(v.zeros, v.zero_bytes);
    v.scales = d.copy(v.scales, v.rows * (v.cols / v.group));
    return v;
}
qk::LiftView on_device(qk::LiftView v, DeviceParts& d) {
    v.codes = d.copy(v.codes, v.code_bytes), v.scales = d.copy(v.scales, v.rows), v.M = d.copy(v.M, v.d * v.D);
    v.signs = d.copy(v.signs, (v.cols + 7) / 8), v.act_scale = d.copy(v.act_scale, v.cols);
    return v;
}
qk::LatticeView on_device(qk::LatticeView v, DeviceParts& d) {
    v.codes = d.copy(v.codes, v.rows * v.cols / 4), v.A = d.copy(v.A, 16), v.b = d.copy(v.b, 4);
    v.su = d.copy(v.su, v.cols), v.sv = d.copy(v.sv, v.rows);
    return v;
}
qk::QamwView on_device(qk::QamwView v, DeviceParts& d) {
    v.codes = d.copy(v.codes, v.code_bytes), v.norms = d.copy(v.norms, v.rows);
    v.codebook = d.copy(v.codebook, int64_t(2) << v.k), v.act_scale = d.copy(v.act_scale, v.cols);
    return v;
}

template <typename View>
struct CudaKernels {
    void (*f32)(const View&, float*);
    void (*f16)(const View&, uint16_t*);
    void (*gemv)(const View&, const float*, float*, int64_t);
};
CudaKernels<qk::GridView> cuda_kernels(const qk::GridView&) {
    return {qk::grid_dequantize_f32_cuda, qk::grid_dequantize_f16_cuda, qk::grid_gemv_cuda};
}
CudaKernels<qk::LiftView> cuda_kernels(const qk::LiftView&) {
    return {qk::lift_dequantize_f32_cuda, qk::lift_dequantize_f16_cuda, qk::lift_gemv_cuda};
}
CudaKernels<qk::LatticeView> cuda_kernels(const qk::LatticeView&) {
    return {qk::lattice_dequantize_f32_cuda, qk::lattice_dequantize_f16_cuda, qk::lattice_gemv_cuda};
}
CudaKernels<qk::QamwView> cuda_kernels(const qk::QamwView&) {
    return {qk::qamw_dequantize_f32_cuda, qk::qamw_dequantize_f16_cuda, qk::qamw_gemv_cuda};
}

}  // namespace

void expect_cuda_matches_cpu(const PackedCase& c, const std::vector<int64_t>& batches, const GemvCheck& g) {
    const KernelView host = kernel_view(c.q);
    DeviceParts parts;
    const KernelView dev = std::visit([&](const auto& w) -> KernelView { return on_device(w, parts); }, host);
    const auto cuda = [&](const auto& run) { std::visit([&](const auto& w) { run(w, cuda_kernels(w)); }, dev); };
    const int64_t n = c.q.numel();
    DeviceCopy<float> out(n);
    cuda([&](const auto& w, const auto& k) { k.f32(w, out.p); });
    std::vector<float> cpu(n);
    dequantize_f32(host, cpu.data(), {});
    EXPECT_EQ(out.host(), cpu) << c.spec;
    DeviceCopy<uint16_t> out16(n);
    cuda([&](const auto& w, const auto& k) { k.f16(w, out16.p); });
    std::vector<uint16_t> cpu16(n);
    dequantize_f16(host, cpu16.data(), {});
    EXPECT_EQ(out16.host(), cpu16) << c.spec;
    for (int64_t batch : batches) {
        const auto x = random_x(batch, c.q.cols, g.cuda_x_seed + batch);
        const DeviceCopy<float> dx(x.data_ptr<float>(), x.numel());
        DeviceCopy<float> dy(batch * c.q.rows);
        cuda([&](const auto& w, const auto& k) { k.gemv(w, dx.p, dy.p, batch); });
        EXPECT_LE(gemv_rel_error(c.ref, x, dy.host()), g.tol) << c.spec << ", batch " << batch;
    }
}
#endif

}  // namespace quench::test
