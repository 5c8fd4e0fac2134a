// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
// ICLR 2023; reference github.com/IST-DASLab/gptq, gptq.py). Columns are rounded one at a time on a scalar
// grid (integer or ParetoQ, scalar_grid.h) and each rounding error is spread over the columns not yet
// rounded through the upper Cholesky factor U of H^-1, in blocks of 128 columns with lazy batch updates.
// The stored form is RTN's, so GPTQ and RTN dequantize identically.
//
// Behaviour (the reference's unless noted):
// - H = mean x^T x of the layer inputs. Dead columns (H_jj = 0) get H_jj = 1 and zero weights, before any
//   grid parameters are fitted (the reference fits per-channel parameters before zeroing them).
// - Dampening adds damp · mean(diag H) to the diagonal. If the Cholesky factorisations still fail
//   (rank-deficient H from little calibration data), damping is retried at 10x, up to 100% of the mean
//   diagonal, before a quench::Error (the reference fails at once).
// - Without act_order, a group's parameters are fitted on the error-updated weights when its first column
//   is reached (the reference's dynamic groups; unlike the reference, for g < 128 the fit includes the
//   updates already made inside the current block). g=0 fits one set per row on the whole weight up front.
// - act_order processes columns by descending H_jj with *static* groups: every natural group's parameters
//   are fitted on the weight up front (the reference's --static-groups), so the stored layout needs no
//   per-column group index and is the same as without act_order.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "common/error.h"
#include "common/progress.h"
#include "quant/codec_factories.h"
#include "quant/scalar_grid.h"

namespace quench {
namespace {

constexpr int64_t kBlock = 128;

std::unique_ptr<ScalarGrid> make_grid(const CodecSpec& spec) {
    const double b = spec.get_real("b");
    const std::string where = spec.to_string();
    if (spec.get_choice("grid") == "paretoq") {
        if (spec.get_flag("sym"))
            throw Error(where + ": sym applies to grid=int only (ParetoQ grids are symmetric already)");
        return make_paretoq_grid(b, where);
    }
    if (b != std::floor(b) || b < 2 || b > 8)
        throw Error(where + ": grid=int needs an integer b in [2, 8], got b=" + spec.values().at("b"));
    return make_int_grid(static_cast<int>(b), spec.get_flag("sym"));
}

// U with U^T U = (H + d·mean(diag H)·I)^-1, retrying with more damping when H is numerically singular.
at::Tensor inverse_hessian_factor(const at::Tensor& H, double damp, const std::string& where) {
    const double mean_diag = H.diagonal().mean().item<double>();
    for (double d = damp;; d = std::min(1.0, std::max(10 * d, 0.01))) {
        // Each cols x cols intermediate is dropped as soon as the next exists: for a 7B down_proj each is
        // 484 MB, and this is the peak of a whole quantize job.
        at::Tensor L, info;
        {
            auto Hd = H.clone();
            Hd.diagonal().add_(d * mean_diag);
            std::tie(L, info) = torch::linalg_cholesky_ex(Hd);
        }
        if (info.item<int64_t>() == 0) {
            at::Tensor inv = torch::cholesky_inverse(L);
            L = at::Tensor();
            auto [U, info_u] = torch::linalg_cholesky_ex(inv, /*upper=*/true);
            inv = at::Tensor();
            if (info_u.item<int64_t>() == 0 && torch::isfinite(U).all().item<bool>()) return U;
        }
        if (d >= 1.0)
            throw Error(where + ": the Hessian is not positive definite even with damping 100% of its mean diagonal "
                                "(corrupt calibration statistics?)");
    }
}

GroupedCodes gptq_codes(const ScalarGrid& grid, at::Tensor W, at::Tensor H, int64_t group, bool act_order, double damp,
                        const std::string& where, ProgressSink& prog) {
    const int64_t rows = W.size(0), cols = W.size(1), groups = group_count(cols, group);
    W = W.clone(at::MemoryFormat::Contiguous);
    H = H.to(torch::kFloat).clone();
    auto diag = H.diagonal();
    const auto dead = diag == 0;
    diag.masked_fill_(dead, 1.0);
    W.masked_fill_(dead.view({1, cols}), 0.0);  // dead inputs never reach the output

    GroupedCodes out{at::Tensor(), torch::empty({rows, groups}),
                     grid.zero_bits() ? torch::empty({rows, groups}) : at::Tensor()};
    const bool dynamic = !act_order && group < cols;
    if (!dynamic) {
        const GroupedParams p = fit_grouped(grid, W, group);
        out.scale.copy_(p.scale);
        if (p.zero.defined()) out.zero.copy_(p.zero);
    }
    at::Tensor perm;
    if (act_order) {
        perm = std::get<1>(torch::sort(diag, /*stable=*/true, /*dim=*/0, /*descending=*/true));
        W = W.index_select(1, perm);
        H = H.index_select(0, perm).index_select(1, perm);
    }
    const at::Tensor U = inverse_hessian_factor(H, damp, where);
    H = at::Tensor();  // only U from here on
    diag = at::Tensor();

    // Transposed so that a column of W is a contiguous row: the per-column updates stream through memory.
    auto Wt = W.t().contiguous();
    auto Ct = torch::empty({cols, rows}, torch::kLong);
    const int64_t* order = act_order ? perm.data_ptr<int64_t>() : nullptr;
    for (int64_t i1 = 0; i1 < cols; i1 += kBlock) {
        prog.check();
        const int64_t i2 = std::min(i1 + kBlock, cols), n = i2 - i1;
        const auto Wb = Wt.narrow(0, i1, n);
        const auto Ub = U.narrow(0, i1, n).narrow(1, i1, n);
        auto err = torch::empty({n, rows});
        for (int64_t i = 0; i < n; ++i) {
            const int64_t j = i1 + i, g = (order ? order[j] : j) / group;
            // The block's in-flight updates are applied on demand (one matrix-vector product per column)
            // rather than as a rank-1 update of the rest of the block: the same arithmetic, without a
            // parallel region per column, which stalls badly on a loaded machine.
            const auto done = err.narrow(0, 0, i);
            if (dynamic && j % group == 0) {
                // The group's columns as updated so far (the last group may be shorter, and a group may reach
                // past this block: later columns have every earlier block's update already).
                const int64_t width = std::min(group, cols - j);
                const auto cur = Wt.narrow(0, j, width) - U.narrow(0, i1, i).narrow(1, j, width).t().mm(done);
                const GridParams p = grid.fit(cur.t());
                out.scale.narrow(1, g, 1).copy_(p.scale);
                if (p.zero.defined()) out.zero.narrow(1, g, 1).copy_(p.zero);
            }
            const GridParams p{out.scale.narrow(1, g, 1), out.zero.defined() ? out.zero.narrow(1, g, 1) : at::Tensor()};
            const auto w = torch::addmv(Wb[i], done.t(), Ub.select(1, i).narrow(0, 0, i), 1, -1).view({rows, 1});
            const auto c = grid.encode(w, p);
            Ct[j].copy_(c.view({rows}));
            err[i].copy_(((w - grid.decode(c, p)) / Ub[i][i]).view({rows}));
        }
        if (i2 < cols) Wt.narrow(0, i2, cols - i2).addmm_(U.narrow(0, i1, n).narrow(1, i2, cols - i2).t(), err, 1, -1);
        prog.report(static_cast<double>(i2) / static_cast<double>(cols), "GPTQ");
    }
    if (act_order) Ct = torch::empty_like(Ct).index_copy_(0, perm, Ct);
    out.codes = Ct.t().contiguous();
    return out;
}

class GptqCodec final : public GroupedGridCodec {
public:
    explicit GptqCodec(const CodecSpec& spec)
        : GroupedGridCodec(spec, make_grid(spec), spec.get_int("g")),
          act_order_(spec.get_flag("act_order")),
          damp_(spec.get_real("damp")) {}

    bool needs_hessian() const override { return true; }

    QuantizedTensor quantize(const at::Tensor& W, const QuantizeContext& ctx) const override {
        const std::string where = spec().to_string();
        if (!ctx.calib || !ctx.calib->hessian.defined())
            throw Error(where + ": GPTQ needs calibration data (the Hessian of the layer inputs); none was given");
        check_weight(spec(), W);
        const at::Tensor& H = ctx.calib->hessian;
        const int64_t cols = W.size(1);
        if (H.dim() != 2 || H.size(0) != cols || H.size(1) != cols)
            throw Error(where + ": the Hessian is " + c10::str(H.sizes()) + " but the weight has " +
                        std::to_string(cols) + " columns");
        if (!torch::isfinite(H).all().item<bool>() || (H.diagonal() < 0).any().item<bool>())
            throw Error(where + ": the Hessian has non-finite values or a negative diagonal");
        torch::NoGradGuard no_grad;
        ProgressSink& prog = ctx.progress ? *ctx.progress : null_progress();
        return store_grouped(spec(), grid(), gptq_codes(grid(), W, H, group_for(W), act_order_, damp_, where, prog));
    }

private:
    bool act_order_;
    double damp_;
};

}  // namespace

const std::vector<ParamDef>& gptq_params() {
    static const std::vector<ParamDef> params = {
        {"b", ParamType::Real, "4", 1, 8, {},
         "bits per weight: an integer 2..8 for grid=int; 1, 1.58, 2, 3 or 4 for grid=paretoq"},
        {"g", ParamType::Int, "128", 0, 0, {"0", "32", "64", "128"},
         "group size in columns sharing one fp16 scale (0 = one per output channel)"},
        {"sym", ParamType::Flag, "0", 0, 0, {}, "symmetric integer grid without zero point (grid=int only)"},
        {"act_order", ParamType::Flag, "0", 0, 0, {},
         "quantize columns by descending Hessian diagonal (groups stay static: fitted on the weight up front)"},
        {"damp", ParamType::Real, "0.01", 0, 1, {},
         "dampening added to the Hessian diagonal, as a fraction of its mean"},
        {"grid", ParamType::Choice, "int", 0, 0, {"int", "paretoq"},
         "rounding grid: integer (as RTN) or ParetoQ's binary / ternary / SEQ / LSQ grids"},
    };
    return params;
}

std::unique_ptr<Codec> make_gptq_codec(const CodecSpec& spec) { return std::make_unique<GptqCodec>(spec); }

const std::vector<std::string>& gptq_examples() {
    static const std::vector<std::string> examples = {"gptq:b=2,g=0,grid=paretoq", "gptq:b=2,g=64",
                                                      "gptq:b=3,g=128,act_order", "gptq:b=4,g=128,sym"};
    return examples;
}

}  // namespace quench
