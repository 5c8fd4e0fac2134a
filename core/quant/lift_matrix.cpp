#include "quant/lift_matrix.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/progress.h"

namespace quench {
namespace {

constexpr int64_t kMaxD = 32;    // codes are 32-bit words
constexpr int64_t kMaxGap = 20;  // the paper's tractability limit on D - d (2^20 candidates per vector)

void check_dims(int64_t D, int64_t d) {
    const std::string dims = "(D=" + std::to_string(D) + ", d=" + std::to_string(d) + ")";
    if (d < 1 || D <= d) throw Error("liftquant: D must be greater than d " + dims);
    if (D > kMaxD) throw Error("liftquant: D must be at most 32 " + dims);
    if (D - d > kMaxGap)
        throw Error("liftquant: D - d must be at most 20, the search tries 2^(D-d) candidates per vector " + dims);
}

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(splitmix64(seed)); }

// Four floats in one SIMD register (SSE on x86-64, NEON on ARM), through GCC/Clang vector extensions.
using f4 = float __attribute__((vector_size(16)));

f4 load4(const float* p) {
    f4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Bit j set when x[j] > 0.
uint32_t positive_bits(f4 x) {
#if defined(__SSE2__)
    return static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpgt_ps(x, _mm_setzero_ps())));
#else
    using i4 = int32_t __attribute__((vector_size(16)));
    const i4 m = (x > 0) & i4{1, 2, 4, 8};
    return static_cast<uint32_t>(m[0] | m[1] | m[2] | m[3]);
#endif
}

// Raw views of a LiftSearch's tables for the scan loop.
struct ScanTables {
    const float* A;  // [8 * bytes, d]
    const float* C;  // [K, 8 * bytes]
    const float* T;  // [bytes, 256, 4 * quads]
    int64_t d, quads, K;
};

// Tries every candidate for rows [lo, hi) of w and keeps the k nearest per row, ascending (ties: lower z
// first). One fused pass per vector: building the [n, K, D] candidate tensor with torch ops instead is
// memory-bound and measured over 10x slower. Signs come 4 at a time from SIMD compares, and M y is summed
// from per-byte tables, so a candidate costs D / 4 compares plus (BYTES + 2) * d / 4 vector flops rather
// than the D * d of a matrix product.
template <int BYTES>
void scan(const ScanTables& t, const float* w, int64_t lo, int64_t hi, int64_t k, float* best_dist,
          int64_t* best_code) {
    constexpr int kWidth = 8 * BYTES;
    const int64_t d = t.d, quads = t.quads, row = 4 * quads;
    f4 u[2 * BYTES], wq[kMaxD / 4];
    for (int64_t i = lo; i < hi; ++i) {
        const float* wi = w + i * d;
        float padded[kMaxD] = {};
        std::copy(wi, wi + d, padded);
        for (int64_t q = 0; q < quads; ++q) wq[q] = load4(padded + 4 * q);
        float x[kWidth];
        for (int c = 0; c < kWidth; ++c) {
            float s = 0;
            for (int64_t j = 0; j < d; ++j) s += t.A[c * d + j] * wi[j];
            x[c] = s;
        }
        for (int h = 0; h < 2 * BYTES; ++h) u[h] = load4(x + 4 * h);
        float* bd = best_dist + i * k;
        int64_t* bc = best_code + i * k;
        std::fill(bd, bd + k, std::numeric_limits<float>::infinity());
        std::fill(bc, bc + k, int64_t(0));
        for (int64_t z = 0; z < t.K; ++z) {
            const float* cz = t.C + z * kWidth;
            uint32_t code = 0;
            const float* rows[BYTES];
            for (int b = 0; b < BYTES; ++b) {
                const uint32_t v = positive_bits(u[2 * b] + load4(cz + 8 * b)) |
                                   positive_bits(u[2 * b + 1] + load4(cz + 8 * b + 4)) << 4;
                code |= v << (8 * b);
                rows[b] = t.T + (b * 256 + v) * row;
            }
            f4 acc = {0, 0, 0, 0};
            for (int64_t q = 0; q < quads; ++q) {
                f4 r = wq[q];
                for (int b = 0; b < BYTES; ++b) r -= load4(rows[b] + 4 * q);
                acc += r * r;
            }
            const float dist = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            if (!(dist < bd[k - 1])) continue;
            int64_t p = k - 1;
            for (; p > 0 && bd[p - 1] > dist; --p) {
                bd[p] = bd[p - 1];
                bc[p] = bc[p - 1];
            }
            bd[p] = dist;
            bc[p] = code;
        }
    }
}

// Gradient in M of the paper's loss mean_b[-(1/tau) logsumexp_c(-tau |w_b - M y_bc|^2)] / d over the k
// nearest candidates c (the rest weigh exp(-tau * gap), nothing measurable): with p_b = softmax_c(-tau dist_bc),
// dL/dM = -2 / (B d) * sum_b sum_c p_bc (w_b - M y_bc) y_bc^T.
at::Tensor softmin_gradient(const at::Tensor& M, const at::Tensor& w, const at::Tensor& codes, const at::Tensor& dist,
                            double tau) {
    const int64_t d = M.size(0), D = M.size(1), B = codes.size(0), k = codes.size(1);
    auto G = torch::zeros_like(M);
    const float *m = M.data_ptr<float>(), *wp = w.data_ptr<float>(), *dp = dist.data_ptr<float>();
    const int64_t* cp = codes.data_ptr<int64_t>();
    float* g = G.data_ptr<float>();
    std::vector<float> p(k), y(D), res(d);
    for (int64_t b = 0; b < B; ++b) {
        float total = 0;
        const float* db = dp + b * k;  // ascending, so db[0] is the largest exponent
        for (int64_t c = 0; c < k; ++c) total += p[c] = std::exp(-static_cast<float>(tau) * (db[c] - db[0]));
        for (int64_t c = 0; c < k; ++c) {
            for (int64_t j = 0; j < D; ++j) y[j] = (cp[b * k + c] >> j) & 1 ? 1.f : -1.f;
            for (int64_t i = 0; i < d; ++i) {
                float s = wp[b * d + i];
                for (int64_t j = 0; j < D; ++j) s -= m[i * D + j] * y[j];
                res[i] = s;
            }
            const float coef = -2.f * p[c] / (total * static_cast<float>(B * d));
            for (int64_t i = 0; i < d; ++i)
                for (int64_t j = 0; j < D; ++j) g[i * D + j] += coef * res[i] * y[j];
        }
    }
    return G;
}

// at::parallel_for is inline OpenMP, serial unless the caller is compiled with -fopenmp (the engine is not),
// so rows are split over plain threads, as many as torch is set to use, each with at least min_rows rows.
void parallel_rows(int64_t n, int64_t min_rows, const std::function<void(int64_t, int64_t)>& f) {
    const int64_t threads = std::clamp<int64_t>(n / std::max<int64_t>(min_rows, 1), 1, at::get_num_threads());
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < threads; ++t) pool.emplace_back(f, n * t / threads, n * (t + 1) / threads);
    f(0, n / threads);
    for (auto& th : pool) th.join();
}

double mse_on(const at::Tensor& M, const at::Tensor& samples) {
    const at::Tensor y = lift_codes_to_signs(LiftSearch(M).encode(samples), M.size(1));
    return (samples - y.matmul(M.t())).square().mean().item<double>();
}


// The cache file names its recipe, so a changed recipe never reads a stale matrix.
uint64_t recipe_hash(const LiftTrainOptions& o) {
    uint64_t h = splitmix64(1);  // bump to invalidate every cached matrix
    for (double v : {double(o.iterations), double(o.batch), double(o.restarts), double(o.test_samples), o.lr, o.tau,
                     double(o.softmin_k)}) {
        uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        h = splitmix64(h ^ bits);
    }
    return h;
}

std::filesystem::path cache_dir() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "quench";
    if (const char* home = std::getenv("HOME"); home && *home) return std::filesystem::path(home) / ".cache" / "quench";
    return {};
}

constexpr char kMagic[8] = {'Q', 'L', 'I', 'F', 'T', 'M', '0', '1'};

// File: magic, int32 D, int32 d, d * D float32 (row-major M). Anything unexpected reads as a miss.
at::Tensor read_cached(const std::filesystem::path& file, int64_t D, int64_t d) {
    std::ifstream in(file, std::ios::binary);
    char magic[8];
    int32_t dims[2];
    auto M = torch::empty({d, D}, torch::kFloat32);
    const auto bytes = static_cast<std::streamsize>(M.numel() * sizeof(float));
    if (!in.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0 || !in.read(reinterpret_cast<char*>(dims), 8) ||
        dims[0] != D || dims[1] != d || !in.read(reinterpret_cast<char*>(M.data_ptr<float>()), bytes) ||
        in.peek() != std::char_traits<char>::eof() || !torch::isfinite(M).all().item<bool>())
        return {};
    return M;
}

void write_cached(const std::filesystem::path& file, const at::Tensor& M) {
    const int32_t dims[2] = {static_cast<int32_t>(M.size(1)), static_cast<int32_t>(M.size(0))};
    std::string bytes(kMagic, 8);
    bytes.append(reinterpret_cast<const char*>(dims), sizeof dims);
    bytes.append(reinterpret_cast<const char*>(M.data_ptr<float>()), M.numel() * sizeof(float));
    std::filesystem::create_directories(file.parent_path());
    write_file_atomic(file.string(), bytes);
}

}  // namespace

LiftSearch::LiftSearch(const at::Tensor& M_in) {
    if (M_in.dim() != 2) throw Error("liftquant: M must be a [d, D] matrix");
    d_ = M_in.size(0);
    D_ = M_in.size(1);
    check_dims(D_, d_);
    K_ = int64_t(1) << (D_ - d_);
    bytes_ = (D_ + 7) / 8;
    const int64_t width = 8 * bytes_;
    const auto M = M_in.detach().to(torch::kFloat64).contiguous();
    // Complete M with an orthonormal basis of its null space; the square matrix's inverse maps [w; z] to x.
    const auto Vh = std::get<2>(torch::linalg_svd(M, /*full_matrices=*/true));
    at::Tensor inv;
    try {
        inv = torch::linalg_inv(torch::cat({M, Vh.slice(0, d_)}, 0));
    } catch (const c10::Error&) {
        throw Error("liftquant: M [" + std::to_string(d_) + ", " + std::to_string(D_) + "] is rank-deficient");
    }
    // Padding coordinates (beyond D, up to a whole byte) have zero rows, columns and table entries.
    const auto invf = inv.to(torch::kFloat32).contiguous();
    A_ = torch::zeros({width, d_}, torch::kFloat32);
    A_.slice(0, 0, D_).copy_(invf.slice(1, 0, d_));
    // C[z] = B z, with bit j of z meaning z_j = +1, built by doubling: the rows with bit j set are the rows
    // below them plus 2 B[:, j]. Training rebuilds this every step, so it avoids a K x (D - d) product.
    const int64_t gap = D_ - d_;
    const auto B = invf.slice(1, d_).contiguous();
    const float* b = B.data_ptr<float>();
    C_ = torch::zeros({K_, width}, torch::kFloat32);
    float* c = C_.data_ptr<float>();
    for (int64_t k = 0; k < D_; ++k)
        for (int64_t j = 0; j < gap; ++j) c[k] -= b[k * gap + j];
    for (int64_t j = 0; j < gap; ++j) {
        const int64_t half = int64_t(1) << j;
        for (int64_t z = 0; z < half; ++z)
            for (int64_t k = 0; k < D_; ++k) c[(z + half) * width + k] = c[z * width + k] + 2 * b[k * gap + j];
    }
    static const auto patterns = lift_codes_to_signs(torch::arange(256), 8);  // [256, 8]
    auto Mp = torch::zeros({d_, width}, torch::kFloat32);
    Mp.slice(1, 0, D_).copy_(M);
    table_ = torch::zeros({bytes_, 256, 4 * ((d_ + 3) / 4)}, torch::kFloat32);  // rows padded to whole f4s
    table_.slice(2, 0, d_).copy_(patterns.matmul(Mp.view({d_, bytes_, 8}).permute({1, 2, 0})));
}

std::pair<at::Tensor, at::Tensor> LiftSearch::nearest(const at::Tensor& w_in, int64_t k) const {
    if (w_in.dim() != 2 || w_in.size(1) != d_)
        throw Error("liftquant search: vectors must be [n, " + std::to_string(d_) + "]");
    if (k < 1 || k > K_) throw Error("liftquant search: k must be in [1, " + std::to_string(K_) + "]");
    const auto w = w_in.detach().to(torch::kFloat32).contiguous();
    const int64_t n = w.size(0);
    auto dist = torch::empty({n, k}, torch::kFloat32);
    auto codes = torch::empty({n, k}, torch::kLong);
    const ScanTables t{A_.data_ptr<float>(), C_.data_ptr<float>(), table_.data_ptr<float>(),
                       d_, table_.size(2) / 4, K_};
    const float* wp = w.data_ptr<float>();
    float* dp = dist.data_ptr<float>();
    int64_t* cp = codes.data_ptr<int64_t>();
    // Rows are independent, so results do not depend on the thread count. A thread gets at least 2^18
    // candidate evaluations (a few milliseconds): below that, starting it and competing with torch's own
    // spinning workers cost more than it saves (training steps measured 4x slower).
    parallel_rows(n, (int64_t(1) << 18) / K_, [&](int64_t lo, int64_t hi) {
        switch (bytes_) {
            case 1: return scan<1>(t, wp, lo, hi, k, dp, cp);
            case 2: return scan<2>(t, wp, lo, hi, k, dp, cp);
            case 3: return scan<3>(t, wp, lo, hi, k, dp, cp);
            default: return scan<4>(t, wp, lo, hi, k, dp, cp);
        }
    });
    return {codes, dist};
}

at::Tensor LiftSearch::encode(const at::Tensor& w) const { return nearest(w, 1).first.squeeze(1); }

at::Tensor lift_codes_to_signs(const at::Tensor& codes, int64_t D) {
    const auto masks = torch::ones({D}, torch::kLong).bitwise_left_shift(torch::arange(D));
    return torch::where(codes.unsqueeze(-1).bitwise_and(masks).ne(0), 1.0f, -1.0f);
}

LiftTrainOptions LiftTrainOptions::cpu_budget(int64_t D, int64_t d) {
    check_dims(D, d);
    // About 2^28 candidate evaluations (seconds on one core), spent on the paper's 3000 steps where the
    // candidate set is small and on fewer, smaller steps where it is large: for 24/10 64 steps of 256
    // samples already reach Table 1's MSE, since the orthonormal start is close to a good M.
    const double K = std::ldexp(1.0, static_cast<int>(D - d)), budget = std::ldexp(1.0, 28);
    LiftTrainOptions o;
    o.iterations = static_cast<int>(std::clamp(budget / (256 * K), 50.0, 3000.0));
    o.batch = static_cast<int64_t>(std::clamp(budget / (o.iterations * K), 32.0, 256.0));
    o.restarts = 1;
    return o;
}

at::Tensor train_lift_matrix(int64_t D, int64_t d, uint64_t seed, const LiftTrainOptions& o, ProgressSink* progress) {
    check_dims(D, d);
    if (o.iterations < 1 || o.batch < 1 || o.restarts < 1 || o.test_samples < 1 || o.softmin_k < 1 || !(o.lr > 0) ||
        !(o.tau > 0))
        throw Error("liftquant: training options must be positive");
    ProgressSink& sink = progress ? *progress : null_progress();
    const int64_t k = std::min<int64_t>(o.softmin_k, int64_t(1) << (D - d));
    // One restart leaves nothing to choose between: no test set then.
    const auto test = o.restarts > 1 ? torch::randn({o.test_samples, d}, generator(seed ^ 0x7E57ull)) : at::Tensor();
    at::Tensor best;
    double best_mse = std::numeric_limits<double>::infinity();
    for (int r = 0; r < o.restarts; ++r) {
        auto gen = generator(splitmix64(seed) + static_cast<uint64_t>(r));
        // Rows start orthonormal, as the paper's text says (its code starts from randn).
        auto M = std::get<0>(torch::linalg_qr(torch::randn({D, d}, gen))).t().contiguous();
        // Adam as torch.optim.Adam does it (betas 0.9, 0.999, eps 1e-8), written out because autograd and
        // torch's parallel kernels on these small tensors cost several times the search itself.
        auto m1 = torch::zeros_like(M), m2 = torch::zeros_like(M);
        for (int it = 0; it < o.iterations; ++it) {
            if (it % 16 == 0) {
                sink.check();
                sink.report((r + double(it) / o.iterations) / o.restarts, "training LiftQuant M");
            }
            const double lr_min = o.lr / 20;
            const double lr = lr_min + 0.5 * (o.lr - lr_min) * (1 + std::cos(M_PI * it / o.iterations));
            const auto w = torch::randn({o.batch, d}, gen);
            const auto [codes, dist] = LiftSearch(M).nearest(w, k);
            const auto g = softmin_gradient(M, w, codes, dist, o.tau);
            m1.mul_(0.9).add_(g, 0.1);
            m2.mul_(0.999).addcmul_(g, g, 0.001);
            const double c1 = 1 - std::pow(0.9, it + 1), c2 = 1 - std::pow(0.999, it + 1);
            M.addcdiv_(m1, (m2 / c2).sqrt_().add_(1e-8), -lr / c1);
        }
        const double mse = test.defined() ? mse_on(M, test) : 0.0;
        if (mse < best_mse) {
            best_mse = mse;
            best = M;
        }
    }
    sink.report(1.0, "training LiftQuant M");
    return best;
}

double lift_mse(const at::Tensor& M, int64_t samples, uint64_t seed) {
    return mse_on(M.to(torch::kFloat32), torch::randn({samples, M.size(0)}, generator(seed)));
}

at::Tensor lift_matrix(int64_t D, int64_t d, uint64_t seed, const LiftTrainOptions& options, ProgressSink* progress) {
    check_dims(D, d);
    static std::mutex mutex;
    static std::map<std::tuple<int64_t, int64_t, uint64_t, uint64_t>, at::Tensor> trained;
    // One lock for lookup and training: a second caller waits for the matrix instead of training it again.
    std::lock_guard<std::mutex> lock(mutex);
    const uint64_t recipe = recipe_hash(options);
    const auto key = std::make_tuple(D, d, seed, recipe);
    if (auto it = trained.find(key); it != trained.end()) return it->second.clone();
    std::filesystem::path file;
    if (const auto dir = cache_dir(); !dir.empty())
        file = dir / ("liftquant-M-D" + std::to_string(D) + "-d" + std::to_string(d) + "-seed" + std::to_string(seed) +
                      "-" + hex64(recipe) + ".bin");
    at::Tensor M = file.empty() ? at::Tensor() : read_cached(file, D, d);
    if (!M.defined()) {
        M = train_lift_matrix(D, d, seed, options, progress);
        try {
            if (!file.empty()) write_cached(file, M);
        } catch (const std::exception&) {
            // The disk cache only saves time; a read-only or full cache directory is not an error.
        }
    }
    trained.emplace(key, M);
    return M.clone();
}

at::Tensor lift_matrix(int64_t D, int64_t d, uint64_t seed, ProgressSink* progress) {
    return lift_matrix(D, d, seed, LiftTrainOptions::cpu_budget(D, d), progress);
}

}  // namespace quench
