#include "qat/paretoq_ste.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"
#include "quant/scalar_grid.h"

namespace quench {
namespace {

constexpr double kClip = 0.99;       // SEQ clips below 1 so x = +-1 cannot round into a fifth level
constexpr double kAlphaFloor = 1e-5;
// bits = -2 selects LSQ on the 2-bit grid alpha*{-2,-1,0,1} (b=2 itself is SEQ): the SEQ vs LSQ comparison.
constexpr double kLsq2Tag = -2;

struct Lsq {
    double qn, qp;
};
Lsq lsq_range(double bits) {
    const double half = std::pow(2.0, std::round(std::abs(bits)) - 1);
    return {-half, half - 1};
}

// Rounding with ties up, not torch.round's ties to even: the PTQ grids (scalar_grid.h) send a weight exactly
// midway between two levels to the upper one, and the checkpoint's low-precision weights hit such ties
// often enough (w = 0, w = alpha/2) that half-to-even would make step 0 differ from the PTQ model. For the
// same reason sign(0) is +1 (the binary grid has no zero). Off exact ties this is the reference's rounding.
at::Tensor round_up(const at::Tensor& v) { return torch::floor(v + 0.5); }

// Level value q(x) (in units of alpha) for the unclipped x.
at::Tensor levels(const at::Tensor& x, ParetoqKind kind, double bits) {
    switch (kind) {
        case ParetoqKind::Binary: return torch::where(x >= 0, torch::ones_like(x), -torch::ones_like(x));
        case ParetoqKind::Ternary: return round_up(x.clamp(-kClip, kClip) * 1.5) / 1.5;
        case ParetoqKind::Seq2: return (round_up(x.clamp(-kClip, kClip) * 2 - 0.5) + 0.5) / 2;
        case ParetoqKind::Lsq: {
            const Lsq r = lsq_range(bits);
            return round_up(x).clamp(r.qn, r.qp);
        }
    }
    return x;
}

class ParetoqFn : public torch::autograd::Function<ParetoqFn> {
public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& W, const at::Tensor& alpha,
                              double bits) {
        const ParetoqKind kind = paretoq_kind(bits);
        const at::Tensor a = alpha.clamp_min(kAlphaFloor);
        ctx->save_for_backward({W, a});
        ctx->saved_data["bits"] = bits;
        return a * levels(W / a, kind, bits);
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor& W = saved[0];
        const at::Tensor& a = saved[1];
        const double bits = ctx->saved_data["bits"].toDouble();
        const ParetoqKind kind = paretoq_kind(bits);
        const at::Tensor& g = grads[0];
        const at::Tensor x = W / a;
        const double n = static_cast<double>(W.numel());
        at::Tensor gw, ga;
        if (kind == ParetoqKind::Binary) {
            gw = g * (x.abs() <= 1).to(g.scalar_type());
            ga = (levels(x, kind, bits) * g).sum(1, true) / std::sqrt(n);
        } else if (kind == ParetoqKind::Lsq) {
            const Lsq r = lsq_range(bits);
            const at::Tensor inside = (x >= r.qn) & (x <= r.qp);
            gw = g * inside.to(g.scalar_type());
            const at::Tensor d = torch::where(x < r.qn, torch::full_like(x, r.qn),
                                              torch::where(x > r.qp, torch::full_like(x, r.qp), round_up(x) - x));
            ga = (g * d).sum(1, true) / std::sqrt(n * r.qp);
        } else {
            // The clipped-region constant is the code's (n_levels - shift) / n_levels: 1 for ternary, 0.75 for
            // 2-bit; for ternary that is not the top level 2/3 (a quirk of the reference we keep).
            const double qp = kind == ParetoqKind::Ternary ? 1.0 : 0.75;
            gw = g * (x.abs() <= kClip).to(g.scalar_type());
            const at::Tensor d = torch::where(x < -kClip, torch::full_like(x, -qp),
                                              torch::where(x > kClip, torch::full_like(x, qp), levels(x, kind, bits) - x));
            ga = (g * d).sum(1, true) / std::sqrt(n);
        }
        return {gw, ga, at::Tensor()};
    }
};


class ParetoqQatLayer final : public QatLayer {
public:
    ParetoqQatLayer(const QuantizedTensor& ptq, const at::Tensor& W_fp, bool lsq2) : spec_(ptq.spec) {
        bits_ = ptq.spec.get_real("b");
        if (lsq2 && bits_ != 2) throw Error("paretoq QAT: the LSQ variant exists at b=2 only, not " + ptq.spec.to_string());
        if (W_fp.dim() != 2 || W_fp.size(0) != ptq.rows || W_fp.size(1) != ptq.cols)
            throw Error("paretoq QAT: full-precision weight does not match the quantized tensor's shape");
        W_ = W_fp.to(torch::kFloat32).clone().set_requires_grad(true);
        const at::Tensor scales = ptq.part("scales").data.to(torch::kFloat32).reshape({ptq.rows, -1});
        if (scales.size(1) != 1) throw Error("paretoq QAT: part 'scales' must hold one alpha per row");
        // Step 0 uses the PTQ's alpha (fp16 as stored), so it reproduces the PTQ grid. The LSQ-2 variant uses
        // the reference's LSQ init alpha = max|w| / (2^(b-1) - 1) = max|w| instead.
        at::Tensor alpha = scales.clone();
        if (lsq2) alpha = W_.detach().abs().amax(1, true).clamp_min(1e-5).to(torch::kFloat16).to(torch::kFloat32);
        alpha_ = alpha.set_requires_grad(true);
        fn_bits_ = lsq2 ? kLsq2Tag : bits_;
    }

    at::Tensor forward(const at::Tensor& x) const override {
        return torch::nn::functional::linear(x, paretoq_quantize(W_, alpha_, fn_bits_));
    }

    std::vector<QatParam> params() const override {
        return {{"W", QatParamKind::Latent, W_}, {"alpha", QatParamKind::Scale, alpha_}};
    }

    QuantizedTensor export_tensor() const override {
        torch::NoGradGuard no_grad;
        // Codes are chosen against the fp16 alpha dequantization reads back.
        const at::Tensor alpha16 = alpha_.clamp_min(kAlphaFloor).to(torch::kFloat16).to(torch::kFloat32);
        const CodecSpec spec = fn_bits_ == kLsq2Tag ? CodecSpec::parse("rtn:b=2,g=0,sym") : spec_;
        const auto grid = fn_bits_ == kLsq2Tag ? make_int_grid(2, true) : make_paretoq_grid(bits_, spec.to_string());
        const at::Tensor W = W_.detach();
        GroupedCodes gc;
        gc.scale = alpha16;
        gc.codes = grid->encode(W, GridParams{alpha16, at::Tensor()});
        return store_grouped(spec, *grid, gc);
    }

private:
    CodecSpec spec_;
    double bits_ = 2, fn_bits_ = 2;
    at::Tensor W_, alpha_;
};

}  // namespace

ParetoqKind paretoq_kind(double bits) {
    if (bits == kLsq2Tag) return ParetoqKind::Lsq;
    if (bits == 1) return ParetoqKind::Binary;
    if (std::abs(bits - 1.58) < 1e-9) return ParetoqKind::Ternary;
    if (bits == 2) return ParetoqKind::Seq2;
    if (bits == 3 || bits == 4) return ParetoqKind::Lsq;
    throw Error("paretoq QAT: b=" + std::to_string(bits) + " is not one of 1, 1.58, 2, 3, 4");
}

at::Tensor paretoq_quantize(const at::Tensor& W, const at::Tensor& alpha, double bits) {
    return ParetoqFn::apply(W, alpha, bits);
}

at::Tensor paretoq_forward_value(const at::Tensor& W, const at::Tensor& alpha, double bits) {
    torch::NoGradGuard no_grad;
    const at::Tensor a = alpha.clamp_min(kAlphaFloor);
    return a * levels(W / a, paretoq_kind(bits), bits);
}

}  // namespace quench

namespace quench {

at::Tensor paretoq_lsq2_quantize(const at::Tensor& W, const at::Tensor& alpha) { return ParetoqFn::apply(W, alpha, kLsq2Tag); }

std::unique_ptr<QatLayer> make_paretoq_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                                 const QatLayerOptions& options) {
    return std::make_unique<ParetoqQatLayer>(ptq, W_fp, options.paretoq_lsq2);
}

}  // namespace quench
