// Packed-code GEMV against dense fp32 on Llama-2-7B shapes (4096x4096, 11008x4096, 4096x11008), batch 1 and
// 8, 1 and 2 threads. Every packed run reports its mean time and its best time (best_us), GB/s of packed
// bytes read and, from best times (robust on a shared machine), the speed-up over gemv_f32 on the same
// shape, batch and threads (x_dense, measured earlier in this binary) and the fraction of the triad
// bandwidth (of_triad, also measured here). BM_PackedInt8 runs the int8-activation GEMVs (packed_int8.h) on
// the same weights, BM_PackedInt8Lut the table-lookup int8 GEMV (packed_int8_lut.h) for codes of 1 to 3 bits
// (the one-time re-laying of the codes is not timed). With a GPU: the CUDA kernels against cuBLAS fp16 GEMV.
// Weights are random codes and scales of the codec's exact layout: timing does not depend on the values.
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "quench_kernels/dense.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_int8_lut.h"
#include "quench_kernels/packed_lattice.h"
#include "quench_kernels/packed_liftquant.h"
#include "quench_kernels/packed_qamw.h"

#ifdef QUENCH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

namespace qk = quench::kernels;

namespace {

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};

std::mt19937_64& rng() {
    static std::mt19937_64 r(42);
    return r;
}

std::vector<uint8_t> random_bytes(int64_t n, int max = 255) {
    std::uniform_int_distribution<int> d(0, max);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(d(rng()));
    return v;
}

// Scales of trained-like magnitude (fp16 of 1e-3 .. 4e-3).
std::vector<uint16_t> random_scales(int64_t n) {
    std::uniform_real_distribution<float> d(1e-3f, 4e-3f);
    std::vector<uint16_t> v(n);
    for (auto& s : v) s = qk::float_to_half(d(rng()));
    return v;
}

std::vector<float> random_floats(int64_t n) {
    std::normal_distribution<float> d;
    std::vector<float> v(n);
    for (auto& f : v) f = d(rng());
    return v;
}

#ifdef QUENCH_HAVE_CUDA
void cuda_ok(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

struct DeviceBuffer {
    void* p = nullptr;
    explicit DeviceBuffer(std::size_t bytes) { cuda_ok(cudaMalloc(&p, std::max<std::size_t>(bytes, 16)), "cudaMalloc"); }
    ~DeviceBuffer() { cudaFree(p); }
    template <typename T>
    T* as() const { return static_cast<T*>(p); }
};

template <typename T>
std::shared_ptr<DeviceBuffer> upload(const std::vector<T>& v) {
    auto d = std::make_shared<DeviceBuffer>(v.size() * sizeof(T));
    cuda_ok(cudaMemcpy(d->p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
    return d;
}

// A device copy of a packed weight and its asynchronous GEMV on device x, y.
struct DevicePacked {
    std::vector<std::shared_ptr<DeviceBuffer>> buffers;
    std::function<void(const float*, float*, int64_t)> gemv;
};
#endif

// A packed weight of one codec setting: its buffers, bytes read per GEMV and the CPU GEMV.
struct Packed {
    int64_t bytes = 0;
    std::function<void(const float*, float*, int64_t, int)> gemv;
    std::function<void(const float*, float*, int64_t, int)> gemv_int8;  // empty when there is none
    std::function<void(const float*, float*, int64_t, int)> gemv_lut;   // empty when there is none
#ifdef QUENCH_HAVE_CUDA
    std::function<DevicePacked()> to_device;
#endif
    std::shared_ptr<void> keep;
};

struct GridSetting {
    std::string name;
    qk::GridKind kind;
    int bits;
    int64_t group;  // 0 = per row
};

const std::vector<GridSetting> kGridSettings = {
    {"rtn:b=4,g=128", qk::GridKind::AsymInt, 4, 128},   {"rtn:b=4,g=128,sym", qk::GridKind::SymInt, 4, 128},
    {"rtn:b=3,g=128", qk::GridKind::AsymInt, 3, 128},   {"rtn:b=2,g=64", qk::GridKind::AsymInt, 2, 64},
    {"rtn:b=8,g=0", qk::GridKind::AsymInt, 8, 0},       {"paretoq:b=4", qk::GridKind::SymInt, 4, 0},
    {"paretoq:b=2", qk::GridKind::Seq, 2, 0},           {"paretoq:b=1.58", qk::GridKind::Ternary, 0, 0},
    {"paretoq:b=1", qk::GridKind::Binary, 1, 0},
};

struct GridBuffers {
    std::vector<uint8_t> codes, zeros;
    std::vector<uint16_t> scales;
    qk::GridView view;
};

std::shared_ptr<GridBuffers> make_grid(const GridSetting& s, int64_t rows, int64_t cols) {
    auto g = std::make_shared<GridBuffers>();
    qk::GridView& v = g->view;
    v.kind = s.kind, v.bits = s.bits, v.rows = rows, v.cols = cols, v.group = s.group ? s.group : cols;
    const int64_t n = rows * cols, params = rows * (cols / v.group);
    g->codes = s.kind == qk::GridKind::Ternary ? random_bytes((n + 4) / 5, 242) : random_bytes((n * s.bits + 7) / 8);
    g->scales = random_scales(params);
    if (s.kind == qk::GridKind::AsymInt) g->zeros = random_bytes((params * s.bits + 7) / 8);
    v.codes = g->codes.data(), v.code_bytes = static_cast<int64_t>(g->codes.size());
    v.scales = g->scales.data();
    v.zeros = g->zeros.empty() ? nullptr : g->zeros.data(), v.zero_bytes = static_cast<int64_t>(g->zeros.size());
    return g;
}

bool has_lut(const GridSetting& s) {
    qk::GridView v;
    v.kind = s.kind, v.bits = s.bits;
    return qk::has_int8_lut(v);
}

Packed packed_grid(const GridSetting& s, int64_t rows, int64_t cols) {
    auto g = make_grid(s, rows, cols);
    Packed p;
    p.bytes = static_cast<int64_t>(g->codes.size() + g->zeros.size() + 2 * g->scales.size());
    p.gemv = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::grid_gemv(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
    p.gemv_int8 = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::grid_gemv_int8(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
    if (qk::has_int8_lut(g->view))
        p.gemv_lut = [g, lut = std::make_shared<std::optional<qk::Int8Lut>>()](const float* x, float* y, int64_t batch,
                                                                               int threads) {
            if (!*lut) *lut = qk::int8_lut(g->view);
            qk::grid_gemv_int8(g->view, **lut, x, y, batch, {threads, qk::CpuPath::Auto});
        };
#ifdef QUENCH_HAVE_CUDA
    p.to_device = [g] {
        DevicePacked d;
        qk::GridView dv = g->view;
        d.buffers = {upload(g->codes), upload(g->scales), upload(g->zeros)};
        dv.codes = d.buffers[0]->as<uint8_t>(), dv.scales = d.buffers[1]->as<uint16_t>();
        dv.zeros = g->zeros.empty() ? nullptr : d.buffers[2]->as<uint8_t>();
        d.gemv = [dv](const float* x, float* y, int64_t batch) { qk::grid_gemv_cuda(dv, x, y, batch); };
        return d;
    };
#endif
    p.keep = g;
    return p;
}

struct LiftSetting {
    std::string name;
    int D, d;
};

const std::vector<LiftSetting> kLiftSettings = {{"liftquant:D=16,d=8", 16, 8}, {"liftquant:D=20,d=8", 20, 8}};

// With the random-sign Hadamard (the codec's default), without act_scale.
Packed packed_lift(const LiftSetting& s, int64_t rows, int64_t cols) {
    struct Buffers {
        std::vector<uint8_t> codes, signs;
        std::vector<uint16_t> scales, M;
        qk::LiftView view;
    };
    auto g = std::make_shared<Buffers>();
    g->codes = random_bytes((rows * (cols / s.d) * s.D + 7) / 8);
    g->signs = random_bytes((cols + 7) / 8);
    g->scales = random_scales(rows);
    g->M = random_scales(static_cast<int64_t>(s.d) * s.D);
    qk::LiftView& v = g->view;
    v.rows = rows, v.cols = cols, v.D = s.D, v.d = s.d;
    v.codes = g->codes.data(), v.code_bytes = static_cast<int64_t>(g->codes.size());
    v.scales = g->scales.data(), v.M = g->M.data(), v.signs = g->signs.data();
    Packed p;
    p.bytes = static_cast<int64_t>(g->codes.size() + g->signs.size() + 2 * (g->scales.size() + g->M.size()));
    p.gemv = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::lift_gemv(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
    p.gemv_int8 = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::lift_gemv_int8(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
    p.gemv_lut = [g, lut = std::make_shared<std::optional<qk::Int8Lut>>()](const float* x, float* y, int64_t batch,
                                                                           int threads) {
        if (!*lut) *lut = qk::int8_lut(g->view);
        qk::lift_gemv_int8(g->view, **lut, x, y, batch, {threads, qk::CpuPath::Auto});
    };
#ifdef QUENCH_HAVE_CUDA
    p.to_device = [g] {
        DevicePacked d;
        qk::LiftView dv = g->view;
        d.buffers = {upload(g->codes), upload(g->signs), upload(g->scales), upload(g->M)};
        dv.codes = d.buffers[0]->as<uint8_t>(), dv.signs = d.buffers[1]->as<uint8_t>();
        dv.scales = d.buffers[2]->as<uint16_t>(), dv.M = d.buffers[3]->as<uint16_t>();
        d.gemv = [dv](const float* x, float* y, int64_t batch) { qk::lift_gemv_cuda(dv, x, y, batch); };
        return d;
    };
#endif
    p.keep = g;
    return p;
}

// LC-QAT with the codec's default Hadamard blocks of 128 (rows and columns).
Packed packed_lattice(int64_t rows, int64_t cols) {
    struct Buffers {
        std::vector<uint8_t> codes;
        std::vector<uint16_t> su, sv;
        std::vector<float> A, b;
        qk::LatticeView view;
    };
    auto g = std::make_shared<Buffers>();
    g->codes = random_bytes(rows * cols / 4);
    g->su = random_scales(cols), g->sv = random_scales(rows);
    g->A = random_floats(16), g->b = random_floats(4);
    qk::LatticeView& v = g->view;
    v.rows = rows, v.cols = cols, v.had_in = 128, v.had_out = 128;
    v.codes = g->codes.data(), v.A = g->A.data(), v.b = g->b.data(), v.su = g->su.data(), v.sv = g->sv.data();
    Packed p;
    p.bytes = static_cast<int64_t>(g->codes.size() + 2 * (g->su.size() + g->sv.size()) + 80);
    p.gemv = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::lattice_gemv(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
    p.gemv_int8 = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::lattice_gemv_int8(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
    p.gemv_lut = [g, lut = std::make_shared<std::optional<qk::Int8Lut>>()](const float* x, float* y, int64_t batch,
                                                                           int threads) {
        if (!*lut) *lut = qk::int8_lut(g->view);
        qk::lattice_gemv_int8(g->view, **lut, x, y, batch, {threads, qk::CpuPath::Auto});
    };
#ifdef QUENCH_HAVE_CUDA
    p.to_device = [g] {
        DevicePacked d;
        qk::LatticeView dv = g->view;
        d.buffers = {upload(g->codes), upload(g->su), upload(g->sv), upload(g->A), upload(g->b)};
        dv.codes = d.buffers[0]->as<uint8_t>(), dv.su = d.buffers[1]->as<uint16_t>(),
        dv.sv = d.buffers[2]->as<uint16_t>();
        dv.A = d.buffers[3]->as<float>(), dv.b = d.buffers[4]->as<float>();
        d.gemv = [dv](const float* x, float* y, int64_t batch) { qk::lattice_gemv_cuda(dv, x, y, batch); };
        return d;
    };
#endif
    p.keep = g;
    return p;
}

// QAM-W with the joint codebook of 2^k points, Hadamard blocks of 128, no signs or act_scale.
Packed packed_qamw(int k, int64_t rows, int64_t cols) {
    struct Buffers {
        std::vector<uint8_t> codes;
        std::vector<uint16_t> norms, book;
        qk::QamwView view;
    };
    auto g = std::make_shared<Buffers>();
    g->codes = random_bytes((rows * cols / 2 * k + 7) / 8);
    g->norms = random_scales(rows), g->book = random_scales(int64_t(2) << k);
    qk::QamwView& v = g->view;
    v.rows = rows, v.cols = cols, v.k = k, v.block = 128;
    v.codes = g->codes.data(), v.code_bytes = static_cast<int64_t>(g->codes.size());
    v.norms = g->norms.data(), v.codebook = g->book.data();
    Packed p;
    p.bytes = static_cast<int64_t>(g->codes.size() + 2 * (g->norms.size() + g->book.size()));
    p.gemv = [g](const float* x, float* y, int64_t batch, int threads) {
        qk::qamw_gemv(g->view, x, y, batch, {threads, qk::CpuPath::Auto});
    };
#ifdef QUENCH_HAVE_CUDA
    p.to_device = [g] {
        DevicePacked d;
        qk::QamwView dv = g->view;
        d.buffers = {upload(g->codes), upload(g->norms), upload(g->book)};
        dv.codes = d.buffers[0]->as<uint8_t>(), dv.norms = d.buffers[1]->as<uint16_t>(),
        dv.codebook = d.buffers[2]->as<uint16_t>();
        d.gemv = [dv](const float* x, float* y, int64_t batch) { qk::qamw_gemv_cuda(dv, x, y, batch); };
        return d;
    };
#endif
    p.keep = g;
    return p;
}

// One packed weight alive at a time: benchmarks are registered setting by setting, shape by shape.
const Packed& cached(const std::string& key, const std::function<Packed()>& make) {
    static std::string current;
    static Packed p;
    if (key != current) {
        p = Packed{};
        p = make();
        current = key;
    }
    return p;
}

// Dense seconds per GEMV by (rows, cols, batch, threads), filled by BM_DenseF32; triad GB/s by threads.
std::map<std::tuple<int64_t, int64_t, int64_t, int>, double>& dense_seconds() {
    static std::map<std::tuple<int64_t, int64_t, int64_t, int>, double> m;
    return m;
}
std::map<int, double>& triad_gbs() {
    static std::map<int, double> m;
    return m;
}

using Clock = std::chrono::steady_clock;

void BM_Triad(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    const std::size_t n = std::size_t(1) << 25;  // 3 x 128 MiB, far past the caches
    std::vector<float> a(n), b(n, 1.f), c(n, 2.f);
    double best = 1e30;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        qk::triad_f32(a.data(), b.data(), c.data(), 0.5f, n, threads);
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
        benchmark::DoNotOptimize(a.data());
    }
    const double gbs = 3.0 * n * sizeof(float) / best / 1e9;  // STREAM's count: two reads and one write
    triad_gbs()[threads] = gbs;
    state.counters["GB/s"] = gbs;
    state.SetLabel(std::to_string(threads) + " thread(s), best run");
}

void BM_DenseF32(benchmark::State& state) {
    const auto [rows, cols] = kShapes[state.range(0)];
    const int64_t batch = state.range(1);
    const int threads = static_cast<int>(state.range(2));
    const std::vector<float> W = random_floats(rows * cols), x = random_floats(batch * cols);
    std::vector<float> y(batch * rows);
    double best = 1e30;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        qk::gemv_f32(W.data(), x.data(), y.data(), rows, cols, batch, threads);
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
        benchmark::DoNotOptimize(y.data());
    }
    dense_seconds()[{rows, cols, batch, threads}] = best;
    state.counters["best_us"] = best * 1e6;
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(rows * cols * 4) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

enum class Path { Fp32, Int8, Lut };

void run_packed(benchmark::State& state, const std::string& name, const std::function<Packed(int64_t, int64_t)>& make,
                Path path = Path::Fp32) {
    const auto [rows, cols] = kShapes[state.range(0)];
    const int64_t batch = state.range(1);
    const int threads = static_cast<int>(state.range(2));
    const Packed& p = cached(name + std::to_string(rows) + "x" + std::to_string(cols), [&] { return make(rows, cols); });
    const auto& gemv = path == Path::Lut ? p.gemv_lut : path == Path::Int8 ? p.gemv_int8 : p.gemv;
    const std::vector<float> x = random_floats(batch * cols);
    std::vector<float> y(batch * rows);
    gemv(x.data(), y.data(), batch, threads);  // warm-up (and the lookup table's one-time build)
    double best = 1e30;
    for (auto _ : state) {
        const auto t0 = Clock::now();
        gemv(x.data(), y.data(), batch, threads);
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
        benchmark::DoNotOptimize(y.data());
    }
    const double sec = best, gbs = static_cast<double>(p.bytes) / sec / 1e9;
    state.counters["best_us"] = best * 1e6;
    state.counters["GB/s"] = gbs;
    state.counters["bits/w"] = 8.0 * static_cast<double>(p.bytes) / static_cast<double>(rows * cols);
    const auto dense = dense_seconds().find({rows, cols, batch, threads});
    if (dense != dense_seconds().end()) state.counters["x_dense"] = dense->second / sec;
    const auto triad = triad_gbs().find(threads);
    if (triad != triad_gbs().end()) state.counters["of_triad"] = gbs / triad->second;
    state.SetLabel(name + (path == Path::Lut ? " int8 x, lookup" : path == Path::Int8 ? " int8 x" : "") + ", batch " + std::to_string(batch) + ", " + std::to_string(threads) +
                   " thread(s)");
}

#ifdef QUENCH_HAVE_CUDA
// GPU time per GEMV from events around kLaunches back-to-back launches, so launch latency overlaps.
constexpr int kLaunches = 20;

template <typename F>
double gpu_seconds_per_call(F&& launch) {
    cudaEvent_t t0, t1;
    cuda_ok(cudaEventCreate(&t0), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&t1), "cudaEventCreate");
    cudaEventRecord(t0);
    for (int i = 0; i < kLaunches; ++i) launch();
    cudaEventRecord(t1);
    cuda_ok(cudaEventSynchronize(t1), "gemv");
    float ms = 0;
    cudaEventElapsedTime(&ms, t0, t1);
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    return ms / 1e3 / kLaunches;
}

std::map<std::tuple<int64_t, int64_t, int64_t>, double>& cublas_seconds() {
    static std::map<std::tuple<int64_t, int64_t, int64_t>, double> m;
    return m;
}

// cuBLAS fp16 weights and inputs, fp32 accumulation and output: y^T = W x^T as GemmEx(m=rows, n=batch).
void BM_CublasF16(benchmark::State& state) {
    const auto [rows, cols] = kShapes[state.range(0)];
    const int64_t batch = state.range(1);
    std::vector<uint16_t> W16(rows * cols), x16(batch * cols);
    for (auto& h : W16) h = qk::float_to_half(std::normal_distribution<float>(0.f, 0.02f)(rng()));
    for (auto& h : x16) h = qk::float_to_half(std::normal_distribution<float>()(rng()));
    const auto dW = upload(W16), dx = upload(x16);
    DeviceBuffer dy(batch * rows * sizeof(float));
    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate");
    const float alpha = 1.f, beta = 0.f;
    auto launch = [&] {
        // Row-major W [rows, cols] is column-major [cols, rows]: op(A) = A^T is [rows, cols].
        if (cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(batch),
                         static_cast<int>(cols), &alpha, dW->p, CUDA_R_16F, static_cast<int>(cols), dx->p, CUDA_R_16F,
                         static_cast<int>(cols), &beta, dy.p, CUDA_R_32F, static_cast<int>(rows), CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
            throw std::runtime_error("cublasGemmEx");
    };
    launch();
    cuda_ok(cudaDeviceSynchronize(), "cublas warm-up");
    double total = 0;
    for (auto _ : state) {
        const double s = gpu_seconds_per_call(launch);
        state.SetIterationTime(s);
        total += s;
    }
    cublasDestroy(handle);
    const double sec = total / static_cast<double>(state.iterations());
    cublas_seconds()[{rows, cols, batch}] = sec;
    state.counters["GB/s"] = static_cast<double>(rows * cols * 2) / sec / 1e9;
}

void run_cuda_packed(benchmark::State& state, const std::string& name, const std::function<Packed(int64_t, int64_t)>& make) {
    const auto [rows, cols] = kShapes[state.range(0)];
    const int64_t batch = state.range(1);
    const Packed& p = cached(name + std::to_string(rows) + "x" + std::to_string(cols), [&] { return make(rows, cols); });
    const DevicePacked d = p.to_device();
    const auto dx = upload(random_floats(batch * cols));
    DeviceBuffer dy(batch * rows * sizeof(float));
    auto launch = [&] { d.gemv(dx->as<float>(), dy.as<float>(), batch); };
    launch();
    cuda_ok(cudaDeviceSynchronize(), "packed warm-up");
    double total = 0;
    for (auto _ : state) {
        const double s = gpu_seconds_per_call(launch);
        state.SetIterationTime(s);
        total += s;
    }
    const double sec = total / static_cast<double>(state.iterations());
    state.counters["GB/s"] = static_cast<double>(p.bytes) / sec / 1e9;
    const auto cublas = cublas_seconds().find({rows, cols, batch});
    if (cublas != cublas_seconds().end()) state.counters["x_cublas_f16"] = cublas->second / sec;
    state.SetLabel(name + ", batch " + std::to_string(batch));
}

template <typename F>
void register_gpu_shapes(const std::string& bench, F&& f) {
    auto* b = benchmark::RegisterBenchmark(bench.c_str(), std::forward<F>(f));
    for (int64_t shape = 0; shape < static_cast<int64_t>(kShapes.size()); ++shape)
        for (int64_t batch : {1, 8}) b->Args({shape, batch});
    b->ArgNames({"shape", "batch"})->Unit(benchmark::kMicrosecond)->UseManualTime();
}
#endif

template <typename F>
void register_shapes(const std::string& bench, F&& f) {
    auto* b = benchmark::RegisterBenchmark(bench.c_str(), std::forward<F>(f));
    for (int64_t shape = 0; shape < static_cast<int64_t>(kShapes.size()); ++shape)
        for (int64_t batch : {1, 8})
            for (int64_t threads : {1, 2}) b->Args({shape, batch, threads});
    b->ArgNames({"shape", "batch", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

void register_all() {
    benchmark::RegisterBenchmark("BM_Triad", BM_Triad)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
    register_shapes("BM_DenseF32", BM_DenseF32);
    // The fp32-activation GEMVs, then the int8-activation ones (BM_PackedInt8) on weights of the same layout,
    // then the lookup GEMV where there is one (BM_PackedInt8Lut).
    for (const Path path : {Path::Fp32, Path::Int8, Path::Lut}) {
        const std::string prefix = path == Path::Lut ? "BM_PackedInt8Lut/" : path == Path::Int8 ? "BM_PackedInt8/" : "BM_Packed/";
        for (const GridSetting& s : kGridSettings)
            if (path != Path::Lut || has_lut(s))
                register_shapes(prefix + s.name, [s, path](benchmark::State& st) {
                    run_packed(st, s.name, [s](int64_t r, int64_t c) { return packed_grid(s, r, c); }, path);
                });
        for (const LiftSetting& s : kLiftSettings)
            register_shapes(prefix + s.name, [s, path](benchmark::State& st) {
                run_packed(st, s.name, [s](int64_t r, int64_t c) { return packed_lift(s, r, c); }, path);
            });
        register_shapes(prefix + "lcqat", [path](benchmark::State& st) { run_packed(st, "lcqat", packed_lattice, path); });
    }
    for (int k : {7, 8})
        register_shapes("BM_Packed/qamw:k=" + std::to_string(k), [k](benchmark::State& st) {
            run_packed(st, "qamw:k=" + std::to_string(k), [k](int64_t r, int64_t c) { return packed_qamw(k, r, c); });
        });
#ifdef QUENCH_HAVE_CUDA
    if (qk::cuda_device_count() > 0) {
        register_gpu_shapes("BM_CudaCublasF16", BM_CublasF16);
        for (const GridSetting& s : kGridSettings)
            register_gpu_shapes("BM_CudaPacked/" + s.name, [s](benchmark::State& st) {
                run_cuda_packed(st, s.name, [s](int64_t r, int64_t c) { return packed_grid(s, r, c); });
            });
        for (const LiftSetting& s : kLiftSettings)
            register_gpu_shapes("BM_CudaPacked/" + s.name, [s](benchmark::State& st) {
                run_cuda_packed(st, s.name, [s](int64_t r, int64_t c) { return packed_lift(s, r, c); });
            });
        register_gpu_shapes("BM_CudaPacked/lcqat", [](benchmark::State& st) { run_cuda_packed(st, "lcqat", packed_lattice); });
        for (int k : {7, 8})
            register_gpu_shapes("BM_CudaPacked/qamw:k=" + std::to_string(k), [k](benchmark::State& st) {
                run_cuda_packed(st, "qamw:k=" + std::to_string(k), [k](int64_t r, int64_t c) { return packed_qamw(k, r, c); });
            });
    }
#endif
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
