#include "quant/ldlq.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "common/progress.h"

namespace quench {
namespace {

// Columns per lazily updated buffer. Within a buffer the feedback is applied group by group on a narrow
// slice; the effect on the columns before it is added once per buffer as one GEMM, which keeps the cost at
// about rows * cols^2 flops per pass with cache-friendly matrix products. Its size changes the speed, not
// the algorithm (results agree up to float rounding).
constexpr int64_t kBufferCols = 128;

struct Factor {
    at::Tensor H;  // the Hessian actually factored (with any retry damping), fp32
    at::Tensor L;  // unit lower block-triangular: H = L D L^T with vec x vec blocks, fp32
};

// QuIP#'s block_LDL: from the Cholesky factor H = C C^T, L = C * blockdiag(C_kk)^-1 has identity diagonal
// blocks and D_k = C_kk C_kk^T. Only L's off-diagonal blocks drive the feedback, so D is not kept.
Factor block_ldl(const at::Tensor& H64, int64_t vec, double retry_damp) {
    const int64_t n = H64.size(0), groups = n / vec;
    at::Tensor H = H64, C;
    for (int k = 0;; ++k) {
        if (k > 0) H = H64 + std::pow(10.0, k) * retry_damp * torch::eye(n, H64.options());
        auto [chol, info] = torch::linalg_cholesky_ex(H);
        if (info.item<int64_t>() == 0 && torch::isfinite(chol).all().item<bool>()) {
            C = chol;
            break;
        }
        if (k == 3 || retry_damp <= 0)
            throw Error("LDLQ: the input Hessian is not positive definite (even after damping retries); "
                        "raise the damping or check the calibration data");
    }
    auto diag = torch::diagonal(C.view({groups, vec, groups, vec}), 0, 0, 2).permute({2, 0, 1});  // [g, vec, vec]
    auto L = torch::matmul(C.view({n, groups, vec}).permute({1, 0, 2}), torch::linalg_inv(diag))
                 .permute({1, 0, 2})
                 .reshape({n, n});
    return {H.to(torch::kFloat32), L.to(torch::kFloat32).contiguous()};
}

void check_progress(ProgressSink* progress, double fraction, const char* stage) {
    if (!progress) return;
    progress->check();
    progress->report(fraction, stage);
}

}  // namespace

at::Tensor regularize_hessian(const at::Tensor& H, double damp) {
    if (H.dim() != 2 || H.size(0) != H.size(1))
        throw Error("Hessian must be a square 2-D matrix");
    auto h = H.to(torch::kFloat64);
    if (!torch::isfinite(h).all().item<bool>()) throw Error("Hessian has non-finite entries");
    const double mean_diag = h.diagonal().mean().item<double>();
    if (!(mean_diag > 0)) throw Error("Hessian has no positive diagonal (all calibration inputs are zero?)");
    h = h / mean_diag;
    h.diagonal().add_(damp);
    return h;
}

at::Tensor ldlq(const at::Tensor& W0, const at::Tensor& H64, const GroupQuantizer& quantize, const LdlqOptions& opt,
                ProgressSink* progress) {
    if (W0.dim() != 2) throw Error("LDLQ: weight must be 2-D");
    const int64_t n = W0.size(1), vec = opt.vec;
    if (vec < 1 || n % vec != 0)
        throw Error("LDLQ: " + std::to_string(n) + " columns are not a multiple of the code size " + std::to_string(vec));
    if (H64.dim() != 2 || H64.size(0) != n || H64.size(1) != n)
        throw Error("LDLQ: Hessian is not [" + std::to_string(n) + ", " + std::to_string(n) + "]");
    const Factor f = block_ldl(H64.to(torch::kFloat64), vec, opt.retry_damp);
    const int64_t buf = std::max(vec, kBufferCols / vec * vec);
    const double passes = 1.0 + opt.tune_iters;
    // Transposed layout (QuIP#'s LDLQ_buffered does the same): a column group is then a contiguous [vec, rows]
    // slab, where row-major W would make every group a strided gather.
    const at::Tensor WT = W0.to(torch::kFloat32).t().contiguous();
    auto hatT = torch::zeros_like(WT);
    auto errT = torch::zeros_like(WT);   // (W - hat)^T on the groups coded so far
    auto prodT = torch::zeros_like(WT);  // feedback from finished buffers: sum over them of L[buf, :]^T err_buf^T
    const auto round = [&](const at::Tensor& targetT, int64_t c) {
        hatT.narrow(0, c, vec).copy_(quantize(targetT.t(), c / vec).t());
    };
    for (int64_t end = n; end > 0; end -= buf) {
        const int64_t start = std::max<int64_t>(0, end - buf);
        check_progress(progress, (n - end) / (n * passes), "LDLQ");
        for (int64_t c = end - vec; c >= start; c -= vec) {
            auto targetT = WT.narrow(0, c, vec) + prodT.narrow(0, c, vec);
            const int64_t later = end - c - vec;  // columns of this buffer already coded
            if (later > 0) targetT.addmm_(f.L.narrow(0, c + vec, later).narrow(1, c, vec).t(), errT.narrow(0, c + vec, later));
            round(targetT, c);
            errT.narrow(0, c, vec).copy_(WT.narrow(0, c, vec) - hatT.narrow(0, c, vec));
        }
        const int64_t len = end - start;
        if (start > 0) prodT.narrow(0, 0, start).addmm_(f.L.narrow(0, start, len).narrow(1, 0, start).t(), errT.narrow(0, start, len));
    }

    // Coordinate descent on tr(E H E^T), E = W - hat: the best unconstrained update of group k given the
    // others is E H[:, k] H_kk^-1, re-rounded to the codebook. G^T = H[buffer, :] E^T is formed once per
    // buffer and kept current inside it with rank-vec corrections as groups change.
    if (opt.tune_iters > 0) {
        const int64_t groups = n / vec;
        auto blocks = torch::diagonal(f.H.view({groups, vec, groups, vec}), 0, 0, 2).permute({2, 0, 1});
        const auto HinvT = torch::linalg_inv(blocks.to(torch::kFloat64)).transpose(1, 2).to(torch::kFloat32).contiguous();
        for (int it = 0; it < opt.tune_iters; ++it) {
            for (int64_t end = n; end > 0; end -= buf) {
                const int64_t start = std::max<int64_t>(0, end - buf), len = end - start;
                check_progress(progress, (1.0 + it + double(n - end) / n) / passes, "LDLQ tuning");
                auto GT = f.H.narrow(0, start, len).matmul(errT);
                for (int64_t c = end - vec; c >= start; c -= vec) {
                    const auto old = hatT.narrow(0, c, vec).clone();
                    round(old + HinvT[c / vec].matmul(GT.narrow(0, c - start, vec)), c);
                    const auto moved = hatT.narrow(0, c, vec) - old;
                    errT.narrow(0, c, vec).sub_(moved);
                    GT.addmm_(f.H.narrow(0, start, len).narrow(1, c, vec), moved, 1.0, -1.0);
                }
            }
        }
    }
    check_progress(progress, 1.0, "LDLQ");
    return hatT.t().contiguous();
}

}  // namespace quench
