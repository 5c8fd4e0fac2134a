#pragma once
// LiftQuant's lift matrix M (d x D): a d-dim vector w is coded as M y with y in {+-1}^D (docs/methods.md
// section 4(a)). Here: the 2^(D-d) candidate nearest-code search, learning M on a unit Gaussian source
// (softmin loss, Adam with cosine decay, seeded restarts) and a cache of trained matrices.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

namespace quench {

class ProgressSink;

// The paper's search, precomputed for one M. Complete M to the square [M; N] (N: orthonormal null-space
// basis from the SVD), so x(z) = [M; N]^{-1} [w; z] = A w + B z; every z in {+-1}^(D-d) proposes the
// candidate y(z) = sign(x(z)), and the candidate nearest to w wins.
class LiftSearch {
public:
    explicit LiftSearch(const at::Tensor& M);  // M: [d, D] float; 1 <= d < D <= 32, D - d <= 20
    int64_t D() const { return D_; }
    int64_t d() const { return d_; }
    int64_t candidates() const { return K_; }

    // w: [n, d] float. Codes int64 [n]: bit k set when y_k = +1 for the nearest candidate.
    at::Tensor encode(const at::Tensor& w) const;
    // The k nearest candidates of each vector, nearest first: codes int64 [n, k] and squared distances
    // float [n, k]. Counted per z, as the paper's softmin counts them: several z may propose the same y.
    std::pair<at::Tensor, at::Tensor> nearest(const at::Tensor& w, int64_t k) const;

private:
    int64_t D_, d_, K_, bytes_;
    at::Tensor A_;      // [8 * bytes, d]: the first d columns of [M; N]^{-1}, zero-padded rows
    at::Tensor C_;      // [K, 8 * bytes]: B z for every z, zero-padded to whole bytes of code
    at::Tensor table_;  // [bytes, 256, d padded to 4]: M's columns of one code byte summed per sign pattern
};

// Code bits to sign vectors: int64 [...] -> float [..., D], +1 where the bit is set, -1 elsewhere.
at::Tensor lift_codes_to_signs(const at::Tensor& codes, int64_t D);

// The recipe of docs/methods.md section 4(a). The defaults are the paper's: 3000 steps x 500 samples x 5
// restarts, tens of minutes on a CPU once D - d >= 14, so the codec trains with cpu_budget() instead.
struct LiftTrainOptions {
    int iterations = 3000;
    int64_t batch = 500;           // fresh N(0, I_d) samples per step
    int restarts = 5;              // the restart with the lowest test MSE wins
    int64_t test_samples = 100000;
    double lr = 0.02;              // Adam, cosine decay to lr / 20
    double tau = 10;               // softmin temperature
    // The softmin runs over the nearest softmin_k candidates only: the others weigh exp(-tau * gap),
    // nothing measurable (16 and all 256 candidates of 16/8 train to the same MSE).
    int64_t softmin_k = 16;
    static LiftTrainOptions cpu_budget(int64_t D, int64_t d);
};

// Trains M [d, D] (float32). Deterministic for (D, d, seed, options). Throws quench::Error on a bad (D, d),
// quench::Cancelled when progress says so.
at::Tensor train_lift_matrix(int64_t D, int64_t d, uint64_t seed, const LiftTrainOptions& options,
                             ProgressSink* progress = nullptr);

// Mean squared error per dimension of coding N(0, I_d) samples with M (Table 1's metric).
double lift_mse(const at::Tensor& M, int64_t samples, uint64_t seed);

// M trained with the given recipe, cached in process and on disk ($XDG_CACHE_HOME/quench or ~/.cache/quench,
// one file per (D, d, seed, recipe), written atomically; an unreadable or unwritable cache only costs a
// retrain). Without options: LiftTrainOptions::cpu_budget(D, d), what the codec uses.
at::Tensor lift_matrix(int64_t D, int64_t d, uint64_t seed, const LiftTrainOptions& options,
                       ProgressSink* progress = nullptr);
at::Tensor lift_matrix(int64_t D, int64_t d, uint64_t seed, ProgressSink* progress = nullptr);

}  // namespace quench
