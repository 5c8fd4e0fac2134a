#include "quant/lcqat_lattice.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"
#include "quant/hadamard.h"
#include "quant/ldlq.h"

// Which version this follows. UniSVQ has two code versions (docs/methods.md 1): v0 (commit 47f1e69,
// create_init_ckpt/, which the notes take for the paper's) and HEAD (the release, "a further improvement
// over the papers"). The paper says nothing beyond its abstract, so every choice below follows code:
//  - Codebook. cb=ortho (default) is v0's "linear_guassian": A = s*O with its stored random rotation O. It
//    is the abstract's "learned affine mapping over discrete vectors" (v0's QAT trains this 4x4 A and b),
//    so it is the initialisation LC-QAT's QAT needs. cb=identity is HEAD's "identical" (O = I: a scalar
//    4-level grid; HEAD's QAT freezes A = s*I, b = z*1).
//  - Hadamard. had=128 (default) is HEAD's 128x128 blocks. v0 transforms each whole dimension with QuIP#'s
//    stored non-power-of-two Hadamard matrices (get_hadK), which we do not carry; had equal to a power-of-two
//    dimension is v0's full transform. Rows that had does not divide use the largest power-of-two block that
//    divides them (HEAD zero-pads instead, which is not invertible on the output side).
//  - Weight scale. Wscale = RMS(Wr) / 0.83 (--scale_override 0.83 in every script of both versions). The
//    notes mention a grid search over --scale_search_iters, but both versions' quip.py loop over [1.0] only
//    (the linspace is commented out), so there is none here.
//  - Hessian. The same in both: regularize_H (H / mean diag + 0.01 I), the random-sign Hadamard on H,
//    Cholesky with x10 damping retries, block LDL, LDLQ last group first, then quip_tune_iters = 10
//    coordinate-descent passes.
//  - Storage. su and sv in fp16 (HEAD; v0 used bf16), codes as 8-bit indices, A and b in fp32.

namespace quench {
namespace {

constexpr double kMean = 1.5;       // (2^bits - 1) / 2
constexpr double kVariance = 1.25;  // variance of the uniform distribution on {0, 1, 2, 3}

// v0's lib/codebook/ortho_dim4.pt (float64, row-major), as printed in docs/methods.md 1(a).
constexpr float kOrtho[16] = {+0.614504f, -0.751269f, -0.083694f, -0.225777f,  //
                              +0.226497f, -0.059458f, +0.829679f, +0.506751f,  //
                              -0.396969f, -0.493435f, -0.348915f, +0.690794f,  //
                              -0.643040f, -0.434260f, +0.427653f, -0.463715f};

// x [..., n] times blockdiag(H_block): one GEMM against the block's matrix, which hadamard_blocks itself
// builds (so ordering and normalisation are the shared ones). On a 4096 x 4096 weight this is about 6x
// faster than the memory-bound butterflies. H is symmetric, so x H = x H^T.
at::Tensor hadamard_gemm(const at::Tensor& x, int64_t block) {
    const at::Tensor h = hadamard_blocks(torch::eye(block, torch::kFloat32), block);
    return x.reshape({-1, block}).matmul(h).view(x.sizes());
}

// H_rows * X * H_cols with blockwise orthonormal Hadamards (symmetric, so also their own inverses).
at::Tensor two_sided_hadamard(at::Tensor x, int64_t row_block, int64_t col_block) {
    if (col_block > 1) x = hadamard_gemm(x, col_block);
    if (row_block > 1) x = hadamard_gemm(x.t().contiguous(), row_block).t();
    return x.contiguous();
}

struct PartBits {
    int64_t codes, su, sv, A, b;
};
PartBits part_bits(int64_t rows, int64_t cols) { return {rows * cols / 4 * 8, cols * 16, rows * 16, 16 * 32, 4 * 32}; }

class LcqatCodec final : public Codec {
public:
    explicit LcqatCodec(CodecSpec spec)
        : Codec(std::move(spec)), codebook_(LcqatCodebook::make(this->spec().get_choice("cb"))) {}

    bool needs_hessian() const override { return spec().get_int("hessian") == 1; }

    BitsEstimate estimate_bits(int64_t rows, int64_t cols) const override {
        lcqat_blocks(spec(), rows, cols);
        const PartBits p = part_bits(rows, cols);
        const double n = static_cast<double>(rows * cols);
        return {p.codes / n, (p.codes + p.su + p.sv + p.A + p.b) / n, p.A + p.b};
    }

    std::string transform_note(int64_t rows, int64_t cols) const override {
        const LcqatBlocks b = lcqat_blocks(spec(), rows, cols);
        if (b.in == 1 && b.out == 1) return {};
        return "hadamard in " + std::to_string(b.in) + ", out " + std::to_string(b.out);
    }

    QuantizedTensor quantize(const at::Tensor& W0, const QuantizeContext& ctx) const override;

    at::Tensor dequantize(const QuantizedTensor& q) const override { return LcqatWeight::from(q).dense(); }

private:
    // The regularized Hessian, or an undefined tensor when hessian=0. Throws when calibration is missing.
    at::Tensor hessian(const QuantizeContext& ctx, int64_t cols) const;

    LcqatCodebook codebook_;
};

at::Tensor LcqatCodec::hessian(const QuantizeContext& ctx, int64_t cols) const {
    if (!needs_hessian()) return {};
    const std::string where = spec().to_string();
    if (!ctx.calib || !ctx.calib->hessian.defined())
        throw Error(where + ": Hessian-aware coding needs calibration data (the layer's input Hessian); "
                            "calibrate first, or use lcqat:hessian=0 to quantize without it");
    const at::Tensor& H = ctx.calib->hessian;
    if (H.dim() != 2 || H.size(0) != cols || H.size(1) != cols)
        throw Error(where + ": calibration Hessian is " + std::to_string(H.dim()) + "-d with " +
                    std::to_string(H.numel()) + " entries, expected [" + std::to_string(cols) + ", " +
                    std::to_string(cols) + "] for this weight");
    try {
        return regularize_hessian(H, spec().get_real("damp"));
    } catch (const Error& e) {
        throw Error(where + ": " + e.what());
    }
}

QuantizedTensor LcqatCodec::quantize(const at::Tensor& W0, const QuantizeContext& ctx) const {
    const std::string where = spec().to_string();
    if (W0.dim() != 2) throw Error(where + ": weight must be 2-D, got " + std::to_string(W0.dim()) + "-d");
    const int64_t rows = W0.size(0), cols = W0.size(1);
    const LcqatBlocks blocks = lcqat_blocks(spec(), rows, cols);
    const at::Tensor H = hessian(ctx, cols);
    const at::Tensor W = W0.to(torch::kFloat32).contiguous();
    if (!torch::isfinite(W).all().item<bool>()) throw Error(where + ": weight has non-finite values");

    // Incoherence: Wr = H_out diag(sv) W diag(su) H_in with seeded random signs (columns, then rows, from
    // one stream), so that W = diag(sv) H_out Wr H_in diag(su) exactly.
    const at::Tensor signs = random_signs(cols + rows, ctx.seed);
    const at::Tensor su = signs.narrow(0, 0, cols), sv = signs.narrow(0, cols, rows);
    const at::Tensor Wr = two_sided_hadamard(sv.unsqueeze(1) * W * su.unsqueeze(0), blocks.out, blocks.in);
    // The RHT is orthogonal, so RMS(Wr) = RMS(W); the scaled weight gets RMS `scale` against the codebook.
    const double wscale = Wr.square().mean().sqrt().item<double>() / spec().get_real("scale");
    const at::Tensor target = wscale > 0 ? Wr / wscale : Wr;

    at::Tensor q;
    if (H.defined()) {
        // The proxy loss tr(E H E^T) is invariant under the same transform applied to H: Hr = H_in S_U H S_U H_in.
        const at::Tensor Hs = su.unsqueeze(1) * H.to(torch::kFloat32) * su.unsqueeze(0);
        const at::Tensor Hr = two_sided_hadamard(Hs, blocks.in, blocks.in);
        const at::Tensor qT = torch::empty({cols, rows}, torch::kLong);  // column groups contiguous, as LDLQ works
        const GroupQuantizer round = [&](const at::Tensor& t, int64_t group) {
            const at::Tensor qg = codebook_.nearest(t);
            qT.narrow(0, group * 4, 4).copy_(qg.t());
            return codebook_.decode(qg);
        };
        LdlqOptions opt;
        opt.vec = 4;
        opt.tune_iters = static_cast<int>(spec().get_int("tune"));
        opt.retry_damp = spec().get_real("damp");
        try {
            ldlq(target, Hr.to(torch::kFloat64), round, opt, ctx.progress);
            q = qT.t();
        } catch (const Cancelled&) {
            throw;
        } catch (const Error& e) {
            throw Error(where + ": " + e.what());
        }
    } else {
        q = codebook_.nearest(target.reshape({-1, 4})).reshape({rows, cols});
    }

    const at::Tensor sv_scaled = (sv * wscale).to(torch::kFloat16);
    if (!torch::isfinite(sv_scaled).all().item<bool>() || (wscale > 0 && sv_scaled.abs().min().item<float>() == 0.0f))
        throw Error(where + ": weight scale " + std::to_string(wscale) + " is outside the fp16 range of sv");
    const PartBits bits = part_bits(rows, cols);
    QuantizedTensor out{spec(), rows, cols, {}};
    const at::Tensor index = lcqat_index_of(q.reshape({rows, cols / 4, 4}));
    out.parts.push_back({"codes", PartRole::Codes, pack_bits(index, 8), bits.codes, false});
    out.parts.push_back({"su", PartRole::Scale, su.to(torch::kFloat16), bits.su, false});
    out.parts.push_back({"sv", PartRole::Scale, sv_scaled, bits.sv, false});
    // A and b are the same for every layer at PTQ time, so stored once per model.
    out.parts.push_back({"A", PartRole::Codebook, codebook_.A.clone(), bits.A, true});
    out.parts.push_back({"b", PartRole::Codebook, codebook_.b.clone(), bits.b, true});
    return out;
}

}  // namespace

LcqatCodebook LcqatCodebook::make(const std::string& kind) {
    LcqatCodebook c;
    if (kind == "ortho")
        c.O = torch::from_blob(const_cast<float*>(kOrtho), {4, 4}, torch::kFloat32).clone();
    else if (kind == "identity")
        c.O = torch::eye(4, torch::kFloat32);
    else
        throw Error("lcqat: unknown codebook '" + kind + "' (ortho or identity)");
    const double s = 1.0 / std::sqrt(kVariance);
    c.A = c.O * s;
    c.b = -s * c.O.matmul(torch::full({4}, kMean, torch::kFloat32));
    return c;
}

at::Tensor LcqatCodebook::codewords() const { return decode(lcqat_index_digits(torch::arange(256, torch::kLong))); }

at::Tensor LcqatCodebook::decode(const at::Tensor& q) const { return q.to(torch::kFloat32).matmul(A.t()) + b; }

at::Tensor LcqatCodebook::nearest(const at::Tensor& w) const {
    const double s = 1.0 / std::sqrt(kVariance);
    return ((w.to(torch::kFloat32) - b).matmul(O) / s).round().clamp(0, 3).to(torch::kLong);
}

at::Tensor lcqat_index_of(const at::Tensor& q) {
    return (q.to(torch::kLong) * torch::tensor({64, 16, 4, 1}, torch::kLong)).sum(-1);
}

at::Tensor lcqat_index_digits(const at::Tensor& index) {
    const at::Tensor i = index.to(torch::kLong);
    return torch::stack(
        {i.div(64, "floor"), i.div(16, "floor").remainder(4), i.div(4, "floor").remainder(4), i.remainder(4)}, -1);
}

LcqatBlocks lcqat_blocks(const CodecSpec& spec, int64_t rows, int64_t cols) {
    const std::string where = spec.to_string();
    if (rows < 1 || cols < 1)
        throw Error(where + ": empty weight [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    if (cols % 4 != 0)
        throw Error(where + ": cols " + std::to_string(cols) +
                    " is not a multiple of 4 (each code covers 4 consecutive weights of a row)");
    const int64_t had = spec.get_int("had");
    if (had == 0) return {};
    // Each side takes the largest power of two up to had that divides its width (576 columns: 64), so every
    // width that is a multiple of 4 has a transform; a width with a large power-of-two factor keeps had.
    LcqatBlocks b{had, had};
    while (cols % b.in != 0) b.in /= 2;
    while (rows % b.out != 0) b.out /= 2;
    return b;
}

LcqatWeight LcqatWeight::from(const QuantizedTensor& t) {
    if (t.spec.codec() != "lcqat") throw Error("LC-QAT weight: tensor was quantized with '" + t.spec.to_string() + "'");
    const LcqatBlocks blocks = lcqat_blocks(t.spec, t.rows, t.cols);
    auto fetch = [&](const std::string& name, std::vector<int64_t> shape) {
        const QuantPart& p = t.part(name);
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        if (p.data.numel() != n)
            throw Error(t.spec.to_string() + ": part '" + name + "' has " + std::to_string(p.data.numel()) +
                        " values, expected " + std::to_string(n));
        return p.data.to(torch::kFloat32).reshape(shape);
    };
    LcqatWeight w;
    const int64_t codes = t.rows * t.cols / 4;
    w.q = lcqat_index_digits(unpack_bits(t.part("codes").data, 8, codes)).reshape({t.rows, t.cols});
    w.A = fetch("A", {4, 4});
    w.b = fetch("b", {4});
    w.su = fetch("su", {t.cols});
    w.sv = fetch("sv", {t.rows});
    w.had_in = blocks.in;
    w.had_out = blocks.out;
    return w;
}

at::Tensor LcqatWeight::dense() const {
    const int64_t rows = q.size(0), cols = q.size(1);
    const at::Tensor wt = (q.reshape({rows, cols / 4, 4}).to(torch::kFloat32).matmul(A.t()) + b).reshape({rows, cols});
    return sv.unsqueeze(1) * two_sided_hadamard(wt, had_out, had_in) * su.unsqueeze(0);
}

const std::vector<ParamDef>& lcqat_params() {
    static const std::vector<ParamDef> p = {
        {"b", ParamType::Int, "2", 0, 0, {"2"},
         "bits per coordinate: 2 gives codes q in {0..3}^4, 256 codewords, 2.0 code bpw (the only width LC-QAT defines)"},
        // An Int, not a Flag: CodecSpec prints only flags that are on, so a default-on flag set to 0 would
        // not survive printing and reparsing.
        {"hessian", ParamType::Int, "1", 0, 0, {"0", "1"},
         "1: Hessian-aware BlockLDLQ error feedback (needs calibration data); "
         "0: round each 4-vector to its nearest codeword"},
        {"cb", ParamType::Choice, "ortho", 0, 0, {"ortho", "identity"},
         "codebook rotation O: ortho = UniSVQ v0's fixed random 4x4 rotation, identity = the HEAD release's scalar grid"},
        {"had", ParamType::Int, "128", 0, 0, {"0", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096"},
         "largest random-sign Hadamard block (HEAD: 128); rows and columns each take the largest power of two "
         "up to it that divides their width; 0 = random signs only"},
        {"damp", ParamType::Real, "0.01", 0, 1, {}, "Hessian damping relative to its mean diagonal (QuIP# sigma_reg)"},
        {"scale", ParamType::Real, "0.83", 0.05, 4, {},
         "RMS of the scaled weight against the unit-variance codebook (UniSVQ --scale_override)"},
        {"tune", ParamType::Int, "10", 0, 50, {},
         "coordinate-descent passes after LDLQ (QuIP# quip_tune_iters); only with hessian"},
    };
    return p;
}

std::unique_ptr<Codec> make_lcqat_codec(const CodecSpec& spec) {
    if (spec.codec() != "lcqat") throw Error("make_lcqat_codec: spec '" + spec.to_string() + "' is not an lcqat spec");
    return std::make_unique<LcqatCodec>(spec);
}

const std::vector<std::string>& lcqat_examples() {
    static const std::vector<std::string> e = {"lcqat", "lcqat:cb=identity", "lcqat:hessian=0"};
    return e;
}

}  // namespace quench
