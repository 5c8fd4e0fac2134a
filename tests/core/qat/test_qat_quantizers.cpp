// The QAT quantizers' forward values and gradients against the reference formulas (docs/methods.md 2(a),
// 1(a), 4(a)) written out independently here, finite differences for the smooth parameters, and the
// step-0 invariant: a QAT layer built from a PTQ result computes exactly the PTQ layer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "qat/lcqat_affine.h"
#include "qat/liftquant_ste.h"
#include "qat/paretoq_ste.h"
#include "qat/qat_layer.h"
#include "quant/codec.h"
#include "quant/hadamard.h"
#include "quant/lcqat_lattice.h"

namespace quench {
namespace {

at::Tensor randn(std::vector<int64_t> shape, uint64_t seed, c10::ScalarType t = torch::kFloat32) {
    torch::manual_seed(seed);
    return torch::randn(shape, torch::TensorOptions().dtype(t));
}

// Reference gradients, element by element, from the formulas as written in the notes.
struct RefGrads {
    at::Tensor gw, ga;
};
RefGrads paretoq_reference(const at::Tensor& W, const at::Tensor& alpha, const at::Tensor& g, double bits) {
    const int64_t rows = W.size(0), cols = W.size(1);
    const double n = static_cast<double>(W.numel());
    at::Tensor gw = torch::zeros_like(W), ga = torch::zeros_like(alpha);
    auto w = W.accessor<float, 2>();
    auto gg = g.accessor<float, 2>();
    auto a = alpha.accessor<float, 2>();
    auto ow = gw.accessor<float, 2>();
    auto oa = ga.accessor<float, 2>();
    for (int64_t i = 0; i < rows; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < cols; ++j) {
            const double x = w[i][j] / std::max(a[i][0], 1e-5f);
            if (bits == 1) {
                ow[i][j] = std::abs(x) <= 1 ? gg[i][j] : 0;
                sum += (w[i][j] >= 0 ? 1 : -1) * gg[i][j];
            } else if (bits == 1.58 || bits == 2) {
                const double qp = bits == 2 ? 0.75 : 1.0;
                const double c = std::min(0.99, std::max(-0.99, x));
                const double q = bits == 2 ? (std::floor(c * 2 - 0.5 + 0.5) + 0.5) / 2 : std::floor(c * 1.5 + 0.5) / 1.5;
                ow[i][j] = std::abs(x) <= 0.99 ? gg[i][j] : 0;
                sum += gg[i][j] * (x < -0.99 ? -qp : x > 0.99 ? qp : q - x);
            } else {
                const double qn = -std::pow(2, bits - 1), qp = std::pow(2, bits - 1) - 1;
                ow[i][j] = (x >= qn && x <= qp) ? gg[i][j] : 0;
                sum += gg[i][j] * (x < qn ? qn : x > qp ? qp : std::floor(x + 0.5) - x);
            }
        }
        const double scale = (bits == 3 || bits == 4) ? std::sqrt(n * (std::pow(2, bits - 1) - 1)) : std::sqrt(n);
        oa[i][0] = static_cast<float>(sum / scale);
    }
    return {gw, ga};
}

class ParetoqGrad : public ::testing::TestWithParam<double> {};

TEST_P(ParetoqGrad, ForwardAndGradientsFollowTheReferenceFormulas) {
    const double bits = GetParam();
    const at::Tensor W0 = randn({6, 40}, 1) * 0.1;
    // alpha below max|w| so some weights fall in the clipped region.
    const double init = bits == 1 ? 0.5 : (bits >= 3 ? 0.6 / (std::pow(2, bits - 1) - 1) : 0.6);
    const at::Tensor a0 = W0.abs().amax(1, true) * init;
    const at::Tensor W = W0.clone().set_requires_grad(true), alpha = a0.clone().set_requires_grad(true);
    const at::Tensor out = paretoq_quantize(W, alpha, bits);
    EXPECT_TRUE(torch::equal(out.detach(), paretoq_forward_value(W0, a0, bits)));
    // Levels: every output divided by its row's alpha is one of the grid's levels.
    const at::Tensor lv = (out.detach() / a0);
    if (bits == 2) {
        EXPECT_TRUE(torch::allclose(
            lv.abs(), torch::where(lv.abs() < 0.5, torch::full_like(lv, 0.25), torch::full_like(lv, 0.75))));
    }
    if (bits == 1.58) {
        EXPECT_TRUE(torch::allclose((lv * 1.5).round(), lv * 1.5, 1e-5, 1e-5));
    }
    const at::Tensor g = randn({6, 40}, 2);
    out.backward(g);
    const RefGrads ref = paretoq_reference(W0, a0, g, bits);
    EXPECT_TRUE(torch::allclose(W.grad(), ref.gw, 1e-6, 1e-7));
    EXPECT_TRUE(torch::allclose(alpha.grad(), ref.ga, 1e-4, 1e-6)) << alpha.grad() << ref.ga;
    EXPECT_GT(ref.gw.eq(0).sum().item<int64_t>(), 0) << "the clip mask must be exercised";
}

INSTANTIATE_TEST_SUITE_P(AllWidths, ParetoqGrad, ::testing::Values(1.0, 1.58, 2.0, 3.0, 4.0));

TEST(ParetoqSte, AlphaIsFlooredAt1e5) {
    const at::Tensor W = torch::tensor({{1e-6f, -3e-6f, 2e-5f}});
    const at::Tensor out = paretoq_forward_value(W, torch::zeros({1, 1}), 4);
    // x = W / 1e-5 = {0.1, -0.3, 2}: rounds to {0, 0, 2}, times the floored alpha.
    EXPECT_TRUE(torch::allclose(out, torch::tensor({{0.0f, 0.0f, 2e-5f}})));
}

TEST(ParetoqSte, Lsq2UsesTheIntegerGridWithQp1) {
    const at::Tensor W = torch::tensor({{-3.0f, -1.2f, 0.4f, 0.6f, 2.5f}}).set_requires_grad(true);
    const at::Tensor alpha = torch::ones({1, 1}).set_requires_grad(true);
    const at::Tensor out = paretoq_lsq2_quantize(W, alpha);
    EXPECT_TRUE(torch::equal(out.detach(), torch::tensor({{-2.0f, -1.0f, 0.0f, 1.0f, 1.0f}})));
    out.sum().backward();
    EXPECT_TRUE(torch::equal(W.grad(), torch::tensor({{0.0f, 1.0f, 1.0f, 1.0f, 0.0f}})));
    // (Qn + (-1 + 1.2) + (0 - 0.4) + (1 - 0.6) + Qp) / sqrt(N * Qp), Qn = -2, Qp = 1, N = 5.
    EXPECT_NEAR(alpha.grad().item<float>(), (-2 + 0.2 - 0.4 + 0.4 + 1) / std::sqrt(5.0), 1e-6);
}

// The layer built from a PTQ result is the PTQ layer at step 0, and exports back to the same codes.
void expect_step0(const std::string& spec, const at::Tensor& W, const QuantizeContext& ctx = {}) {
    SCOPED_TRACE(spec);
    const auto codec = make_codec(spec);
    const QuantizedTensor q = codec->quantize(W, ctx);
    const at::Tensor Wq = codec->dequantize(q);
    const auto layer = make_qat_layer(q, W);
    const at::Tensor x = randn({5, W.size(1)}, 7);
    torch::NoGradGuard no_grad;
    const at::Tensor want = x.matmul(Wq.t());
    EXPECT_LT((layer->forward(x) - want).abs().max().item<float>(), 1e-5 * (1 + want.abs().max().item<float>()));
    const QuantizedTensor back = layer->export_tensor();
    EXPECT_TRUE(torch::equal(back.part("codes").data, q.part("codes").data));
    EXPECT_TRUE(torch::allclose(make_codec(back.spec)->dequantize(back), Wq, 1e-5, 1e-6));
}

TEST(QatLayer, Step0ReproducesThePtqLayer) {
    const at::Tensor W = randn({24, 64}, 3) * 0.05;
    for (const char* s : {"paretoq:b=1", "paretoq:b=1.58", "paretoq:b=2", "paretoq:b=3", "paretoq:b=4",
                          "lcqat:hessian=0,had=16", "lcqat:hessian=0,had=0,cb=identity", "liftquant:D=16,d=8",
                          "liftquant:D=16,d=8,had=0"})
        expect_step0(s, W);
    // LiftQuant with a short, zero-padded last chunk (64 = 6 x 10 + 4) and LC-QAT's 128-block capped to 64.
    for (const char* s : {"liftquant:D=16,d=10", "liftquant:D=20,d=10,had=0", "lcqat:hessian=0"}) expect_step0(s, W);
    // LC-QAT from its Hessian-aware BlockLDLQ init.
    const at::Tensor X = randn({256, 64}, 4);
    CalibStats calib;
    calib.hessian = X.t().matmul(X) / 256;
    QuantizeContext ctx;
    ctx.calib = &calib;
    ctx.seed = 5;
    expect_step0("lcqat:had=16", W, ctx);
}

TEST(LcqatDge, SurrogateGradientIsThePowerLawWithK5ClampedAt3) {
    const at::Tensor u = torch::tensor({1.25, 0.9, 2.0, 1.5, 3.7, -0.4}, torch::kDouble).set_requires_grad(true);
    const at::Tensor q = lcqat_dge_round(u);
    EXPECT_TRUE(torch::equal(q.detach(), torch::tensor({1.0, 1.0, 2.0, 2.0, 3.0, 0.0}, torch::kDouble)));
    q.sum().backward();
    auto dge = [](double r) { return std::min(3.0, 0.2 * std::pow(std::abs(2 * r - 1), 0.2 - 1)); };
    // r = u - clamp(floor(u), 0, 3): 0.25, 0.9, 0, 0.5 (the pole, clamped), 0.7 (floor 3), -0.4 (floor clamped to 0).
    const double want[] = {dge(0.25), dge(0.9), dge(0.0), 3.0, dge(0.7), dge(-0.4)};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(u.grad()[i].item<double>(), want[i], 1e-12) << i;
    EXPECT_NEAR(want[0], 0.2 * std::pow(0.5, -0.8), 1e-12);
}

// Central differences of sum(y * g) in double against autograd.
void fd_check(const std::function<at::Tensor()>& f, const at::Tensor& p, const at::Tensor& g, const char* name) {
    const at::Tensor y = f();
    if (p.grad().defined()) p.grad().zero_();
    (y * g).sum().backward();
    const at::Tensor analytic = p.grad().clone();
    torch::NoGradGuard no_grad;
    const double h = 1e-6;
    auto flat = p.view({-1});
    for (int64_t i = 0; i < std::min<int64_t>(flat.numel(), 12); ++i) {
        const int64_t k = (i * 7919) % flat.numel();
        const double v = flat[k].item<double>();
        flat[k] = v + h;
        const double up = (f() * g).sum().item<double>();
        flat[k] = v - h;
        const double down = (f() * g).sum().item<double>();
        flat[k] = v;
        EXPECT_NEAR(analytic.view({-1})[k].item<double>(), (up - down) / (2 * h), 1e-6) << name << " " << k;
    }
}

TEST(LcqatAffine, ActivationSideAffineMapEqualsTheDenseWeightAndHasExactGradients) {
    const int64_t rows = 8, cols = 32;
    const at::Tensor q = torch::randint(0, 4, {rows, cols}, torch::TensorOptions().dtype(torch::kLong));
    const LcqatCodebook cb = LcqatCodebook::make("ortho");
    LcqatWeight w;
    w.q = q;
    w.A = cb.A.to(torch::kDouble) + randn({4, 4}, 8, torch::kDouble) * 0.05;
    w.b = cb.b.to(torch::kDouble);
    w.su = randn({cols}, 9, torch::kDouble);
    w.sv = randn({rows}, 10, torch::kDouble);
    w.had_in = 16;
    w.had_out = 8;
    const double kappa = lcqat_kappa(rows, cols);
    const at::Tensor W_lat = ((q.to(torch::kDouble) - 1.5) / kappa).set_requires_grad(true);
    const at::Tensor A = w.A.clone().set_requires_grad(true), b = w.b.clone().set_requires_grad(true);
    const at::Tensor su = w.su.clone().set_requires_grad(true), sv = w.sv.clone().set_requires_grad(true);
    const at::Tensor x = randn({3, cols}, 11, torch::kDouble).set_requires_grad(true);
    auto f = [&] { return lcqat_linear(x, W_lat, A, b, su, sv, 16, 8); };
    w.q = q;
    {
        torch::NoGradGuard no_grad;
        // The codec's dense weight (fp32 Hadamard) against the activation-side form.
        LcqatWeight wf = w;
        for (at::Tensor* t : {&wf.A, &wf.b, &wf.su, &wf.sv}) *t = t->to(torch::kFloat32);
        EXPECT_TRUE(torch::allclose(f().to(torch::kFloat32), x.to(torch::kFloat32).matmul(wf.dense().t()), 1e-4, 1e-5));
    }
    const at::Tensor g = randn({3, rows}, 12, torch::kDouble);
    for (auto [p, name] : {std::pair{A, "A"}, {b, "b"}, {su, "su"}, {sv, "sv"}, {x, "x"}}) fd_check(f, p, g, name);
    // W_lat: the chain rule through the DGE surrogate, dL/dW_lat = kappa * dge(u) * dL/dq, with dL/dq from
    // the same layer written with q as a free variable (no rounding).
    W_lat.grad().zero_();
    (f() * g).sum().backward();
    const at::Tensor qv = q.to(torch::kDouble).set_requires_grad(true);
    auto had = [](const at::Tensor& t, int64_t n) {
        return t.reshape({-1, n}).matmul(hadamard_blocks(torch::eye(n, torch::kDouble), n).to(torch::kDouble)).reshape(t.sizes());
    };
    const at::Tensor xh = had(x.detach() * su.detach(), 16);
    const at::Tensor xj = xh.reshape({3, cols / 4, 4});
    const at::Tensor y = xj.matmul(A.detach()).reshape({3, cols}).matmul(qv.t()) + xj.matmul(b.detach()).sum(-1, true);
    (had(y, 8) * sv.detach() * g).sum().backward();
    const at::Tensor u = W_lat.detach() * kappa + 1.5;
    EXPECT_TRUE(torch::allclose(W_lat.grad(), qv.grad() * kappa * lcqat_dge_grad(u), 1e-9, 1e-9));
}

TEST(LiftQuantSte, LiftedActivationsEqualTheDenseWeightAndGradientsAreExact) {
    const int64_t rows = 6, d = 8, D = 16, cols = 32;
    const at::Tensor M = randn({d, D}, 20, torch::kDouble) * 0.3;
    const at::Tensor Y0 = randn({rows, cols / d * D}, 21, torch::kDouble) * 0.6;
    const at::Tensor Y = Y0.clone().set_requires_grad(true);
    const at::Tensor s = (randn({rows}, 22, torch::kDouble).abs() + 0.5).set_requires_grad(true);
    const at::Tensor c = (randn({cols}, 23, torch::kDouble).abs() + 0.5).set_requires_grad(true);
    const at::Tensor signs = torch::where(randn({cols}, 24, torch::kDouble) >= 0, 1.0, -1.0).to(torch::kDouble);
    const at::Tensor x = randn({4, cols}, 25, torch::kDouble);
    auto f = [&] { return liftquant_linear(x, Y, s, c, signs, M, 32); };
    {
        // The codec's dequantization: rows of s * (M y) per chunk, then H, then the signs and 1/act_scale.
        torch::NoGradGuard no_grad;
        const at::Tensor y = torch::where(Y0 >= 0, 1.0, -1.0).to(torch::kDouble).reshape({rows, cols / d, D});
        at::Tensor Wr = y.matmul(M.t()).reshape({rows, cols}) * s.unsqueeze(1);
        Wr = Wr.matmul(hadamard_blocks(torch::eye(32, torch::kDouble), 32).to(torch::kDouble)) * signs * c;
        EXPECT_TRUE(torch::allclose(f(), x.matmul(Wr.t()), 1e-10, 1e-10));
    }
    const at::Tensor g = randn({4, rows}, 26, torch::kDouble);
    fd_check(f, s, g, "scales");
    fd_check(f, c, g, "col_scale");
    // Y_lat: straight through the sign inside |Y| <= 1; dL/dsign(Y) from the same formula with signs free.
    Y.grad().zero_();
    (f() * g).sum().backward();
    const at::Tensor sv = torch::where(Y0 >= 0, 1.0, -1.0).to(torch::kDouble).set_requires_grad(true);
    (liftquant_linear(x, sv, s.detach(), c.detach(), signs, M, 32) * g).sum().backward();
    (void)0;
    const at::Tensor mask = (Y0.abs() <= 1).to(torch::kDouble);
    // sv itself went through the STE once more (|+-1| <= 1 passes), so its gradient is dL/dsign.
    EXPECT_TRUE(torch::allclose(Y.grad(), sv.grad() * mask, 1e-10, 1e-10));
    EXPECT_GT((mask == 0).sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace quench
