// GPU check of the packed kernels that needs nothing but nvcc and cuBLAS, so it runs on a bare GPU machine
// without LibTorch, GoogleTest or Google Benchmark (tests/bench/cuda_device_check.sh builds and runs it):
// every CUDA kernel against the CPU kernels (which the unit tests tie to core's dequantize) on random
// packed weights with odd shapes and tails, then timings against cuBLAS fp16 GemmEx and the dense fp32
// CUDA GEMV, measured in the same process. Exits non-zero on any mismatch.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quench_kernels/dense.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_lattice.h"
#include "quench_kernels/packed_liftquant.h"
#include "quench_kernels/packed_qamw.h"

namespace qk = quench::kernels;

static int failures = 0, checks = 0;
static std::mt19937_64 rng(5);

#define EXPECT(cond, ...)                     \
    do {                                      \
        ++checks;                             \
        if (!(cond)) {                        \
            ++failures;                       \
            std::printf("FAIL %s: ", #cond);  \
            std::printf(__VA_ARGS__);         \
            std::printf("\n");                \
        }                                     \
    } while (0)

void ok(cudaError_t e, const char* w) {
    if (e != cudaSuccess) {
        std::printf("CUDA error %s: %s\n", w, cudaGetErrorString(e));
        std::exit(2);
    }
}

std::shared_ptr<void> dev(const void* host, size_t bytes) {
    void* p = nullptr;
    ok(cudaMalloc(&p, bytes ? bytes : 16), "cudaMalloc");
    if (host && bytes) ok(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice), "H2D");
    return std::shared_ptr<void>(p, cudaFree);
}
template <typename T>
std::vector<T> host(const std::shared_ptr<void>& d, size_t n) {
    std::vector<T> v(n);
    ok(cudaMemcpy(v.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost), "D2H");
    return v;
}
template <typename T>
T* as(const std::shared_ptr<void>& d) { return static_cast<T*>(d.get()); }

std::vector<uint8_t> bytes(int64_t n, int max = 255) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng() % (max + 1));
    return v;
}
std::vector<uint16_t> halfs(int64_t n, float lo, float hi, bool random_sign = false) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<uint16_t> v(n);
    for (auto& h : v) h = qk::float_to_half(random_sign && (rng() & 1) ? -d(rng) : d(rng));
    return v;
}
std::vector<float> normals(int64_t n) {
    std::normal_distribution<float> d;
    std::vector<float> v(n);
    for (auto& f : v) f = d(rng);
    return v;
}

// Max |y - W x| / sum |W x| with W the CPU-dequantized weight, in double.
double rel_err(const std::vector<float>& W, const std::vector<float>& x, const std::vector<float>& y, int64_t rows,
               int64_t cols, int64_t batch) {
    double worst = 0;
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t r = 0; r < rows; ++r) {
            double ref = 0, mag = 1e-300;
            for (int64_t c = 0; c < cols; ++c) {
                ref += double(W[r * cols + c]) * x[b * cols + c];
                mag += std::fabs(double(W[r * cols + c]) * x[b * cols + c]);
            }
            worst = std::max(worst, std::fabs(y[b * rows + r] - ref) / mag);
        }
    return worst;
}

// The three CPU/GPU pairs every codec has, checked the same way.
struct Kernels {
    std::function<void(float*)> cpu_f32, gpu_f32;
    std::function<void(uint16_t*)> cpu_f16, gpu_f16;
    std::function<void(const float*, float*, int64_t)> cpu_gemv, gpu_gemv;
};

void check(const std::string& name, int64_t rows, int64_t cols, const Kernels& k) {
    const int64_t n = rows * cols;
    std::vector<float> w(n);
    k.cpu_f32(w.data());
    auto d = dev(nullptr, n * 4);
    k.gpu_f32(as<float>(d));
    const auto g = host<float>(d, n);
    EXPECT(std::memcmp(g.data(), w.data(), n * 4) == 0, "%s [%ld, %ld] fp32 dequantize differs", name.c_str(), rows, cols);
    std::vector<uint16_t> w16(n);
    k.cpu_f16(w16.data());
    k.gpu_f16(as<uint16_t>(d));
    EXPECT(host<uint16_t>(d, n) == w16, "%s fp16 dequantize differs", name.c_str());
    for (int64_t batch : {1, 3, 8}) {
        const auto x = normals(batch * cols);
        std::vector<float> ycpu(batch * rows);
        k.cpu_gemv(x.data(), ycpu.data(), batch);
        auto dx = dev(x.data(), x.size() * 4), dy = dev(nullptr, batch * rows * 4);
        k.gpu_gemv(as<float>(dx), as<float>(dy), batch);
        const double eg = rel_err(w, x, host<float>(dy, batch * rows), rows, cols, batch);
        const double ec = rel_err(w, x, ycpu, rows, cols, batch);
        EXPECT(eg <= 1e-5 && ec <= 1e-5, "%s [%ld, %ld] batch %ld: gpu rel err %.3g, cpu %.3g", name.c_str(), rows, cols,
               batch, eg, ec);
    }
    std::printf("checked %-34s [%5ld, %5ld]\n", name.c_str(), rows, cols);
}

// ---- packed weights of each codec, host and device copies ----

struct Grid {
    std::vector<uint8_t> codes, zeros;
    std::vector<uint16_t> scales;
    qk::GridView h, d;
    std::vector<std::shared_ptr<void>> keep;
    int64_t bytes() const { return codes.size() + zeros.size() + 2 * scales.size(); }
};
Grid make_grid(qk::GridKind kind, int bits, int64_t rows, int64_t cols, int64_t group) {
    Grid g;
    group = group ? group : cols;
    const int64_t n = rows * cols, params = rows * (cols / group);
    g.codes = kind == qk::GridKind::Ternary ? bytes((n + 4) / 5, 242) : bytes((n * bits + 7) / 8);
    g.scales = halfs(params, 1e-3f, 4e-3f);
    if (kind == qk::GridKind::AsymInt) g.zeros = bytes((params * bits + 7) / 8);
    g.h.kind = kind, g.h.bits = bits, g.h.rows = rows, g.h.cols = cols, g.h.group = group;
    g.h.codes = g.codes.data(), g.h.code_bytes = g.codes.size(), g.h.scales = g.scales.data();
    g.h.zeros = g.zeros.empty() ? nullptr : g.zeros.data(), g.h.zero_bytes = g.zeros.size();
    g.d = g.h;
    g.keep = {dev(g.codes.data(), g.codes.size()), dev(g.scales.data(), g.scales.size() * 2), dev(g.zeros.data(), g.zeros.size())};
    g.d.codes = as<uint8_t>(g.keep[0]), g.d.scales = as<uint16_t>(g.keep[1]);
    g.d.zeros = g.zeros.empty() ? nullptr : as<uint8_t>(g.keep[2]);
    return g;
}
Kernels grid_kernels(const Grid& g) {
    return {[&g](float* o) { qk::grid_dequantize_f32(g.h, o); }, [&g](float* o) { qk::grid_dequantize_f32_cuda(g.d, o); },
            [&g](uint16_t* o) { qk::grid_dequantize_f16(g.h, o); }, [&g](uint16_t* o) { qk::grid_dequantize_f16_cuda(g.d, o); },
            [&g](const float* x, float* y, int64_t b) { qk::grid_gemv(g.h, x, y, b); },
            [&g](const float* x, float* y, int64_t b) { qk::grid_gemv_cuda(g.d, x, y, b); }};
}

struct Lift {
    std::vector<uint8_t> codes, signs;
    std::vector<uint16_t> scales, M, act;
    qk::LiftView h, d;
    std::vector<std::shared_ptr<void>> keep;
    int64_t bytes() const { return codes.size() + signs.size() + 2 * (scales.size() + M.size() + act.size()); }
};
Lift make_lift(int D, int dd, int64_t rows, int64_t cols, bool had, bool awq) {
    Lift l;
    l.codes = bytes((rows * (cols / dd) * D + 7) / 8);
    l.signs = bytes((cols + 7) / 8);
    l.scales = halfs(rows, 0.01f, 0.05f);
    l.M = halfs(int64_t(dd) * D, 0.05f, 0.5f, true);
    l.act = halfs(cols, 0.3f, 3.f);
    l.h.rows = rows, l.h.cols = cols, l.h.D = D, l.h.d = dd;
    l.h.codes = l.codes.data(), l.h.code_bytes = l.codes.size(), l.h.scales = l.scales.data(), l.h.M = l.M.data();
    l.h.signs = had ? l.signs.data() : nullptr;
    l.h.act_scale = awq ? l.act.data() : nullptr;
    l.d = l.h;
    l.keep = {dev(l.codes.data(), l.codes.size()), dev(l.signs.data(), l.signs.size()), dev(l.scales.data(), l.scales.size() * 2),
              dev(l.M.data(), l.M.size() * 2), dev(l.act.data(), l.act.size() * 2)};
    l.d.codes = as<uint8_t>(l.keep[0]), l.d.scales = as<uint16_t>(l.keep[2]), l.d.M = as<uint16_t>(l.keep[3]);
    l.d.signs = had ? as<uint8_t>(l.keep[1]) : nullptr;
    l.d.act_scale = awq ? as<uint16_t>(l.keep[4]) : nullptr;
    return l;
}
Kernels lift_kernels(const Lift& g) {
    return {[&g](float* o) { qk::lift_dequantize_f32(g.h, o); }, [&g](float* o) { qk::lift_dequantize_f32_cuda(g.d, o); },
            [&g](uint16_t* o) { qk::lift_dequantize_f16(g.h, o); }, [&g](uint16_t* o) { qk::lift_dequantize_f16_cuda(g.d, o); },
            [&g](const float* x, float* y, int64_t b) { qk::lift_gemv(g.h, x, y, b); },
            [&g](const float* x, float* y, int64_t b) { qk::lift_gemv_cuda(g.d, x, y, b); }};
}

struct Lattice {
    std::vector<uint8_t> codes;
    std::vector<uint16_t> su, sv;
    std::vector<float> A, b;
    qk::LatticeView h, d;
    std::vector<std::shared_ptr<void>> keep;
    int64_t bytes() const { return codes.size() + 2 * (su.size() + sv.size()) + 80; }
};
Lattice make_lattice(int64_t rows, int64_t cols, int64_t hin, int64_t hout) {
    Lattice l;
    l.codes = bytes(rows * cols / 4);
    l.su = halfs(cols, 1.f, 1.f, true), l.sv = halfs(rows, 0.01f, 0.02f, true);
    l.A = normals(16), l.b = normals(4);
    l.h.rows = rows, l.h.cols = cols, l.h.had_in = hin, l.h.had_out = hout;
    l.h.codes = l.codes.data(), l.h.A = l.A.data(), l.h.b = l.b.data(), l.h.su = l.su.data(), l.h.sv = l.sv.data();
    l.d = l.h;
    l.keep = {dev(l.codes.data(), l.codes.size()), dev(l.su.data(), l.su.size() * 2), dev(l.sv.data(), l.sv.size() * 2),
              dev(l.A.data(), 64), dev(l.b.data(), 16)};
    l.d.codes = as<uint8_t>(l.keep[0]), l.d.su = as<uint16_t>(l.keep[1]), l.d.sv = as<uint16_t>(l.keep[2]);
    l.d.A = as<float>(l.keep[3]), l.d.b = as<float>(l.keep[4]);
    return l;
}
Kernels lattice_kernels(const Lattice& g) {
    return {[&g](float* o) { qk::lattice_dequantize_f32(g.h, o); }, [&g](float* o) { qk::lattice_dequantize_f32_cuda(g.d, o); },
            [&g](uint16_t* o) { qk::lattice_dequantize_f16(g.h, o); }, [&g](uint16_t* o) { qk::lattice_dequantize_f16_cuda(g.d, o); },
            [&g](const float* x, float* y, int64_t b) { qk::lattice_gemv(g.h, x, y, b); },
            [&g](const float* x, float* y, int64_t b) { qk::lattice_gemv_cuda(g.d, x, y, b); }};
}

struct Qamw {
    std::vector<uint8_t> codes;
    std::vector<uint16_t> norms, book, act;
    qk::QamwView h, d;
    std::vector<std::shared_ptr<void>> keep;
    int64_t bytes() const { return codes.size() + 2 * (norms.size() + book.size() + act.size()); }
};
Qamw make_qamw(int k, int64_t rows, int64_t cols, int64_t block, bool signs, bool act) {
    Qamw q;
    q.codes = bytes((rows * cols / 2 * k + 7) / 8);
    q.norms = halfs(rows, 0.5f, 2.f), q.book = halfs(int64_t(2) << k, 0.1f, 2.f, true), q.act = halfs(cols, 0.3f, 3.f);
    q.h.rows = rows, q.h.cols = cols, q.h.k = k, q.h.block = block, q.h.signs = signs, q.h.sign_seed = 77;
    q.h.codes = q.codes.data(), q.h.code_bytes = q.codes.size(), q.h.norms = q.norms.data(), q.h.codebook = q.book.data();
    q.h.act_scale = act ? q.act.data() : nullptr;
    q.d = q.h;
    q.keep = {dev(q.codes.data(), q.codes.size()), dev(q.norms.data(), q.norms.size() * 2), dev(q.book.data(), q.book.size() * 2),
              dev(q.act.data(), q.act.size() * 2)};
    q.d.codes = as<uint8_t>(q.keep[0]), q.d.norms = as<uint16_t>(q.keep[1]), q.d.codebook = as<uint16_t>(q.keep[2]);
    q.d.act_scale = act ? as<uint16_t>(q.keep[3]) : nullptr;
    return q;
}
Kernels qamw_kernels(const Qamw& g) {
    return {[&g](float* o) { qk::qamw_dequantize_f32(g.h, o); }, [&g](float* o) { qk::qamw_dequantize_f32_cuda(g.d, o); },
            [&g](uint16_t* o) { qk::qamw_dequantize_f16(g.h, o); }, [&g](uint16_t* o) { qk::qamw_dequantize_f16_cuda(g.d, o); },
            [&g](const float* x, float* y, int64_t b) { qk::qamw_gemv(g.h, x, y, b); },
            [&g](const float* x, float* y, int64_t b) { qk::qamw_gemv_cuda(g.d, x, y, b); }};
}

void correctness() {
    using K = qk::GridKind;
    struct G { K kind; int bits; int64_t rows, cols, group; };
    for (const G& c : {G{K::AsymInt, 2, 19, 96, 32}, G{K::AsymInt, 3, 13, 192, 64}, G{K::AsymInt, 4, 9, 256, 128},
                       G{K::AsymInt, 8, 7, 1001, 0}, G{K::AsymInt, 5, 11, 77, 0}, G{K::SymInt, 4, 17, 384, 128},
                       G{K::SymInt, 3, 21, 131, 0}, G{K::Binary, 1, 23, 1003, 0}, G{K::Ternary, 0, 29, 517, 0},
                       G{K::Seq, 2, 31, 250, 0}, G{K::Binary, 1, 12, 160, 32}, G{K::Ternary, 0, 9, 128, 64},
                       G{K::AsymInt, 4, 64, 4096, 128}, G{K::Seq, 2, 40, 4096, 0}, G{K::Binary, 1, 33, 2048, 0},
                       G{K::AsymInt, 8, 16, 512, 32}}) {
        const Grid g = make_grid(c.kind, c.bits, c.rows, c.cols, c.group);
        check("grid kind " + std::to_string(int(c.kind)) + " b" + std::to_string(c.bits) + " g" + std::to_string(c.group),
              c.rows, c.cols, grid_kernels(g));
    }
    struct L { int D, d; int64_t rows, cols; bool had, awq; };
    for (const L& c : {L{16, 8, 13, 200, true, false}, L{16, 10, 5, 130, true, true}, L{20, 8, 11, 128, true, true},
                       L{16, 10, 9, 250, false, false}, L{16, 8, 8, 8192, true, false}, L{24, 8, 17, 11008, true, false}}) {
        const Lift l = make_lift(c.D, c.d, c.rows, c.cols, c.had, c.awq);
        check("liftquant D" + std::to_string(c.D) + " d" + std::to_string(c.d), c.rows, c.cols, lift_kernels(l));
    }
    struct T { int64_t rows, cols, hin, hout; };
    for (const T& c : {T{24, 256, 128, 8}, T{13, 128, 128, 1}, T{48, 256, 128, 16}, T{20, 96, 32, 4}, T{7, 44, 1, 1}, T{256, 512, 128, 128}}) {
        const Lattice l = make_lattice(c.rows, c.cols, c.hin, c.hout);
        check("lcqat had " + std::to_string(c.hin) + "/" + std::to_string(c.hout), c.rows, c.cols, lattice_kernels(l));
    }
    struct Q { int k; int64_t rows, cols, block; bool signs, act; };
    for (const Q& c : {Q{7, 13, 256, 128, false, false}, Q{8, 9, 128, 128, true, false}, Q{6, 11, 48, 16, false, true},
                       Q{5, 7, 38, 2, false, false}, Q{12, 5, 512, 128, true, true}, Q{16, 3, 64, 8, false, false},
                       Q{11, 4, 8192, 8192, false, false}}) {
        const Qamw q = make_qamw(c.k, c.rows, c.cols, c.block, c.signs, c.act);
        check("qamw k" + std::to_string(c.k) + " block " + std::to_string(c.block), c.rows, c.cols, qamw_kernels(q));
    }
}

// ---- timings ----

template <typename F>
double gpu_us(F&& f, int reps = 50) {
    f();
    ok(cudaDeviceSynchronize(), "warm-up");
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        cudaEventRecord(a);
        for (int i = 0; i < reps; ++i) f();
        cudaEventRecord(b);
        ok(cudaEventSynchronize(b), "timing");
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        best = std::min(best, ms * 1e3 / reps);
    }
    cudaEventDestroy(a), cudaEventDestroy(b);
    return best;
}

void timings() {
    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) std::exit(3);
    std::printf("\n%-22s %-12s %5s %10s %9s %10s %10s\n", "setting", "shape", "batch", "us", "GB/s", "x_cublas16", "x_dense32");
    for (auto shape_rc : {std::pair<int64_t, int64_t>{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
        const int64_t rows = shape_rc.first, cols = shape_rc.second;
        auto W16 = dev(halfs(rows * cols, 0.f, 0.02f, true).data(), rows * cols * 2);
        auto W32 = dev(normals(rows * cols).data(), rows * cols * 4);
        const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
        for (int64_t batch : {1, 8}) {
            auto x16 = dev(halfs(batch * cols, 0.f, 1.f, true).data(), batch * cols * 2);
            auto x = dev(normals(batch * cols).data(), batch * cols * 4), y = dev(nullptr, batch * rows * 4);
            const float alpha = 1, beta = 0;
            const double cub = gpu_us([&] {
                cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, rows, batch, cols, &alpha, W16.get(), CUDA_R_16F, cols,
                             x16.get(), CUDA_R_16F, cols, &beta, y.get(), CUDA_R_32F, rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            });
            const double dense = gpu_us([&] { qk::gemv_f32_cuda(as<float>(W32), as<float>(x), as<float>(y), rows, cols, batch); }, 10);
            std::printf("%-22s %-12s %5ld %10.2f %9.0f %10s %10s\n", "cublas fp16", shape.c_str(), batch, cub,
                        rows * cols * 2 / cub / 1e3, "1.00", "");
            std::printf("%-22s %-12s %5ld %10.2f %9.0f %10.2f %10s   (dense fp32, syncs per call)\n", "gemv_f32_cuda", shape.c_str(),
                        batch, dense, rows * cols * 4 / dense / 1e3, cub / dense, "");
            auto report = [&](const std::string& name, int64_t bytes, const std::function<void()>& f) {
                const double us = gpu_us(f);
                std::printf("%-22s %-12s %5ld %10.2f %9.0f %10.2f %10.2f\n", name.c_str(), shape.c_str(), batch, us,
                            bytes / us / 1e3, cub / us, dense / us);
            };
            using K = qk::GridKind;
            struct G { const char* name; K kind; int bits; int64_t group; };
            for (const G& s : {G{"rtn:b=4,g=128", K::AsymInt, 4, 128}, G{"rtn:b=4,g=128,sym", K::SymInt, 4, 128},
                               G{"rtn:b=3,g=128", K::AsymInt, 3, 128}, G{"rtn:b=2,g=64", K::AsymInt, 2, 64},
                               G{"rtn:b=8,g=0", K::AsymInt, 8, 0}, G{"paretoq:b=2", K::Seq, 2, 0},
                               G{"paretoq:b=1.58", K::Ternary, 0, 0}, G{"paretoq:b=1", K::Binary, 1, 0}}) {
                const Grid g = make_grid(s.kind, s.bits, rows, cols, s.group);
                report(s.name, g.bytes(), [&] { qk::grid_gemv_cuda(g.d, as<float>(x), as<float>(y), batch); });
            }
            for (int D : {16, 20}) {
                const int d = 8;
                const Lift l = make_lift(D, d, rows, cols, true, false);
                report("liftquant:D=" + std::to_string(D) + ",d=8", l.bytes(),
                       [&] { qk::lift_gemv_cuda(l.d, as<float>(x), as<float>(y), batch); });
            }
            const Lattice lt = make_lattice(rows, cols, 128, 128);
            report("lcqat", lt.bytes(), [&] { qk::lattice_gemv_cuda(lt.d, as<float>(x), as<float>(y), batch); });
            for (int k : {7, 8}) {
                const Qamw q = make_qamw(k, rows, cols, 128, false, false);
                report("qamw:k=" + std::to_string(k), q.bytes(), [&] { qk::qamw_gemv_cuda(q.d, as<float>(x), as<float>(y), batch); });
            }
        }
    }
    cublasDestroy(handle);
}

int main(int argc, char** argv) {
    cudaDeviceProp p;
    ok(cudaGetDeviceProperties(&p, 0), "props");
    std::printf("device: %s, %d SMs, cuda_device_count() = %d\n", p.name, p.multiProcessorCount, qk::cuda_device_count());
    const auto t0 = std::chrono::steady_clock::now();
    correctness();
    std::printf("correctness: %d checks, %d failures (%.1f s)\n", checks, failures,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (argc < 2 || std::string(argv[1]) != "--no-timing") timings();
    std::printf("RESULT: %s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
