#include "qat/lcqat_affine.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"
#include "quant/hadamard.h"
#include "quant/lcqat_lattice.h"

namespace quench {
namespace {

constexpr double kMean = 1.5;

class DgeRound : public torch::autograd::Function<DgeRound> {
public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u, double k) {
        ctx->save_for_backward({u});
        ctx->saved_data["k"] = k;
        return torch::round(u).clamp(0, 3);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const at::Tensor u = ctx->get_saved_variables()[0];
        return {grads[0] * lcqat_dge_grad(u, ctx->saved_data["k"].toDouble()), at::Tensor()};
    }
};

// x [..., n] times blockdiag(H_block) (symmetric); a matmul so autograd differentiates it.
at::Tensor hadamard_right(const at::Tensor& x, int64_t block) {
    if (block <= 1) return x;
    const at::Tensor h = hadamard_blocks(torch::eye(block, torch::kFloat32), block).to(x.scalar_type());
    return x.reshape({-1, block}).matmul(h).reshape(x.sizes());
}

class LcqatQatLayer final : public QatLayer {
public:
    explicit LcqatQatLayer(const QuantizedTensor& ptq) : spec_(ptq.spec) {
        const LcqatWeight w = LcqatWeight::from(ptq);
        rows_ = ptq.rows;
        cols_ = ptq.cols;
        had_in_ = w.had_in;
        had_out_ = w.had_out;
        // W_lat = (q - 1.5)/kappa (UniSVQ's create_qwen3_ckpt_from_quip.py), so step 0 decodes to q exactly.
        const double kappa = lcqat_kappa(rows_, cols_);
        W_lat_ = ((w.q.to(torch::kFloat32) - kMean) / kappa).set_requires_grad(true);
        A_ = w.A.clone().set_requires_grad(true);
        b_ = w.b.clone().set_requires_grad(true);
        // The PTQ's su and sv are kept as they are (not rebalanced to equal norms as the conversion script
        // does): rebalancing changes nothing in the product but would make step 0 differ by fp16 rounding.
        su_ = w.su.clone().set_requires_grad(true);
        sv_ = w.sv.clone().set_requires_grad(true);
    }

    at::Tensor forward(const at::Tensor& x) const override {
        return lcqat_linear(x, W_lat_, A_, b_, su_, sv_, had_in_, had_out_);
    }

    std::vector<QatParam> params() const override {
        return {{"W_lat", QatParamKind::Latent, W_lat_}, {"A", QatParamKind::Scale, A_}, {"b", QatParamKind::Scale, b_},
                {"su", QatParamKind::Scale, su_}, {"sv", QatParamKind::Scale, sv_}};
    }

    QuantizedTensor export_tensor() const override {
        torch::NoGradGuard no_grad;
        const at::Tensor q =
            torch::round(W_lat_ * lcqat_kappa(rows_, cols_) + kMean).clamp(0, 3).to(torch::kLong);
        QuantizedTensor out{spec_, rows_, cols_, {}};
        const at::Tensor index = lcqat_index_of(q.reshape({rows_, cols_ / 4, 4}));
        out.parts.push_back({"codes", PartRole::Codes, pack_bits(index, 8), rows_ * cols_ / 4 * 8, false});
        out.parts.push_back({"su", PartRole::Scale, su_.detach().to(torch::kFloat16), cols_ * 16, false});
        out.parts.push_back({"sv", PartRole::Scale, sv_.detach().to(torch::kFloat16), rows_ * 16, false});
        // Trained per layer, so no longer shared between layers as the PTQ's A and b are.
        out.parts.push_back({"A", PartRole::Codebook, A_.detach().clone(), 16 * 32, false});
        out.parts.push_back({"b", PartRole::Codebook, b_.detach().clone(), 4 * 32, false});
        return out;
    }

private:
    CodecSpec spec_;
    int64_t rows_ = 0, cols_ = 0, had_in_ = 1, had_out_ = 1;
    at::Tensor W_lat_, A_, b_, su_, sv_;
};

}  // namespace

at::Tensor lcqat_dge_grad(const at::Tensor& u, double k) {
    const at::Tensor r = u - torch::floor(u).clamp(0, 3);
    return ((2 * r - 1).abs().pow(1.0 / k - 1) / k).clamp_max(3);
}

at::Tensor lcqat_dge_round(const at::Tensor& u, double k) { return DgeRound::apply(u, k); }

double lcqat_kappa(int64_t rows, int64_t cols) { return std::sqrt(static_cast<double>(rows + cols)) / 2; }

at::Tensor lcqat_linear(const at::Tensor& x, const at::Tensor& W_lat, const at::Tensor& A, const at::Tensor& b,
                        const at::Tensor& su, const at::Tensor& sv, int64_t had_in, int64_t had_out) {
    const int64_t rows = W_lat.size(0), cols = W_lat.size(1);
    if (x.size(-1) != cols)
        throw Error("lcqat QAT: input has " + std::to_string(x.size(-1)) + " features, the layer " + std::to_string(cols));
    const at::Tensor q = lcqat_dge_round(W_lat * lcqat_kappa(rows, cols) + kMean);
    const at::Tensor xh = hadamard_right(x * su, had_in);
    auto chunks_shape = xh.sizes().vec();
    chunks_shape.back() = cols / 4;
    chunks_shape.push_back(4);
    const at::Tensor xj = xh.reshape(chunks_shape);
    const at::Tensor z = xj.matmul(A).reshape(xh.sizes());  // row j: (A^T x'_j)^T
    const at::Tensor bias = xj.matmul(b).sum(-1, true);     // sum_j b . x'_j, the same for every output
    const at::Tensor y = z.matmul(q.t()) + bias;
    return hadamard_right(y, had_out) * sv;
}

std::unique_ptr<QatLayer> make_lcqat_qat_layer(const QuantizedTensor& ptq, const at::Tensor&, const QatLayerOptions&) {
    return std::make_unique<LcqatQatLayer>(ptq);
}

BitsEstimate lcqat_qat_bits(const Codec& ptq, int64_t rows, int64_t cols) {
    // The same parts as the PTQ layer, but A and b are trained per layer (export_tensor), no longer shared.
    BitsEstimate e = ptq.estimate_bits(rows, cols);
    e.shared_bits = 0;
    return e;
}

}  // namespace quench
