#include "qat/liftquant_ste.h"

#include <torch/torch.h>

#include "common/error.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"
#include "quant/hadamard.h"

namespace quench {
namespace {

class SignSte : public torch::autograd::Function<SignSte> {
public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& y) {
        ctx->save_for_backward({y});
        return torch::where(y >= 0, torch::ones_like(y), -torch::ones_like(y));
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const at::Tensor y = ctx->get_saved_variables()[0];
        return {grads[0] * (y.abs() <= 1).to(grads[0].scalar_type())};
    }
};

// Latent magnitude of a code at step 0: half the distance to the clip edge, so a few updates of the weight
// learning rate can flip a sign while one step cannot.
constexpr double kLatentInit = 0.5;

class LiftQuantQatLayer final : public QatLayer {
public:
    explicit LiftQuantQatLayer(const QuantizedTensor& ptq) : spec_(ptq.spec), rows_(ptq.rows), cols_(ptq.cols) {
        const std::string where = spec_.to_string() + " QAT";
        D_ = spec_.get_int("D");
        d_ = spec_.get_int("d");
        M_ = ptq.part("M").data.to(torch::kFloat32);
        M16_ = ptq.part("M").data.clone();
        if (M_.dim() != 2 || M_.size(0) != d_ || M_.size(1) != D_) throw Error(where + ": part 'M' has the wrong shape");
        const int64_t code_bits = rows_ * chunks() * D_;
        const at::Tensor bits = unpack_bits(ptq.part("codes").data, 1, code_bits).to(torch::kFloat32);
        Y_lat_ = ((bits * 2 - 1) * kLatentInit).reshape({rows_, chunks() * D_}).set_requires_grad(true);
        scales_ = ptq.part("scales").data.to(torch::kFloat32).reshape({rows_}).clone().set_requires_grad(true);
        at::Tensor c = torch::ones({cols_}, torch::kFloat32);
        if (spec_.get_flag("awq")) c = 1 / ptq.part("act_scale").data.to(torch::kFloat32).reshape({cols_});
        col_scale_ = c.set_requires_grad(true);
        if (spec_.get_flag("had")) {
            signs_part_ = ptq.part("signs").data.clone();
            signs_ = unpack_bits(signs_part_, 1, cols_).to(torch::kFloat32) * 2 - 1;
            had_ = cols_ & -cols_;  // the codec's block: the largest power of two dividing cols
        }
    }

    at::Tensor forward(const at::Tensor& x) const override {
        return liftquant_linear(x, Y_lat_, scales_, col_scale_, signs_, M_, had_);
    }

    std::vector<QatParam> params() const override {
        return {{"Y_lat", QatParamKind::Latent, Y_lat_}, {"scales", QatParamKind::Scale, scales_},
                {"col_scale", QatParamKind::Scale, col_scale_}};
    }

    QuantizedTensor export_tensor() const override {
        torch::NoGradGuard no_grad;
        // A trained input transform is stored as the codec's act_scale part, so the exported spec has awq on
        // (the same codec; dequantization divides the columns by act_scale = 1/c).
        CodecSpec spec = spec_;
        if (!spec.get_flag("awq")) spec = CodecSpec::parse(spec_.to_string() + ",awq");
        QuantizedTensor q{spec, rows_, cols_, {}};
        if (spec_.get_flag("had")) q.parts.push_back({"signs", PartRole::Transform, signs_part_, cols_, false});
        const at::Tensor act = (1 / col_scale_).clamp(-65504, 65504).to(torch::kFloat16);
        q.parts.push_back({"act_scale", PartRole::Scale, act, cols_ * 16, false});
        const int64_t code_bits = rows_ * chunks() * D_;
        q.parts.push_back({"codes", PartRole::Codes, pack_bits((Y_lat_ >= 0).reshape({-1}), 1), code_bits, false});
        q.parts.push_back({"scales", PartRole::Scale, scales_.clamp(-65504, 65504).to(torch::kFloat16), rows_ * 16, false});
        q.parts.push_back({"M", PartRole::Codebook, M16_, d_ * D_ * 16, true});
        return q;
    }

private:
    int64_t chunks() const { return (cols_ + d_ - 1) / d_; }  // the last one short when d does not divide cols

    CodecSpec spec_;
    int64_t rows_, cols_, D_ = 0, d_ = 0, had_ = 1;
    at::Tensor M_, M16_, Y_lat_, scales_, col_scale_, signs_, signs_part_;
};

}  // namespace

at::Tensor liftquant_sign_ste(const at::Tensor& latent) { return SignSte::apply(latent); }

at::Tensor liftquant_linear(const at::Tensor& x, const at::Tensor& Y_lat, const at::Tensor& scales,
                            const at::Tensor& col_scale, const at::Tensor& signs, const at::Tensor& M, int64_t had) {
    const int64_t d = M.size(0), D = M.size(1), cols = x.size(-1), chunks = (cols + d - 1) / d;
    if (Y_lat.size(1) != chunks * D)
        throw Error("liftquant QAT: input has " + std::to_string(cols) + " features, the codes do not match");
    at::Tensor xs = x * col_scale;
    if (signs.defined()) {
        xs = xs * signs;
        if (had > 1) {
            const at::Tensor h = hadamard_blocks(torch::eye(had, torch::kFloat32), had).to(x.scalar_type());
            xs = xs.reshape({-1, had}).matmul(h).reshape(x.sizes());
        }
    }
    // A short last chunk (d not dividing cols) meets zeros in its pad columns, as in the codec.
    if (chunks * d != cols) xs = torch::constant_pad_nd(xs, {0, chunks * d - cols});
    auto shape = xs.sizes().vec();
    shape.back() = chunks;
    shape.push_back(d);
    auto flat = xs.sizes().vec();
    flat.back() = chunks * D;
    const at::Tensor z = xs.reshape(shape).matmul(M).reshape(flat);  // chunk i: (M^T x''_i)^T
    return z.matmul(liftquant_sign_ste(Y_lat).t()) * scales;
}

std::unique_ptr<QatLayer> make_liftquant_qat_layer(const QuantizedTensor& ptq, const at::Tensor&,
                                                   const QatLayerOptions&) {
    return std::make_unique<LiftQuantQatLayer>(ptq);
}

BitsEstimate liftquant_qat_bits(const Codec& ptq, int64_t rows, int64_t cols) {
    // export_tensor stores the trained input transform as the codec's awq scales: the same setting with awq.
    const CodecSpec& spec = ptq.spec();
    if (spec.get_flag("awq")) return ptq.estimate_bits(rows, cols);
    return make_codec(CodecSpec::parse(spec.to_string() + ",awq"))->estimate_bits(rows, cols);
}

}  // namespace quench
