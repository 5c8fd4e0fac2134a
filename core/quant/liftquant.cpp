// LiftQuant as a PTQ codec (docs/methods.md section 4): each d-weight chunk of a row is coded as M y with
// y in {+-1}^D, so a weight costs D/d bits for any fractional width. Optional steps before coding: an
// activation-aware column scale and a random-sign block Hadamard on the input dimension (the paper's
// learned whitening transform T is not reproduced; these are its initialisation).
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/progress.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"
#include "quant/hadamard.h"
#include "quant/lift_matrix.h"

namespace quench {
namespace {

// Every layer with the same (D, d) shares one M (stored once per model), so M is trained from a fixed
// seed, never from the per-layer ctx.seed.
constexpr uint64_t kLiftSeed = 0;
// Rows decoded per step: bounds the memory of unpacked codes. Blocks of a multiple of 8 rows start on a
// byte of the code stream, so they pack and unpack independently.
constexpr int64_t kRowBlock = 256;

// The largest power of two dividing cols: the Hadamard block, derived from the shape so nothing is stored.
int64_t hadamard_block(int64_t cols) { return cols & -cols; }

// fp16 is what the parts store; quantize works with the rounded values so dequantize reproduces them.
at::Tensor as_stored_fp16(const at::Tensor& x) { return x.clamp(-65504, 65504).to(torch::kHalf); }

// AWQ's rule with exponent 1/2. After scaling columns by s the coding error is roughly uniform per weight,
// so the output error for inputs with mean |x_j| = a_j goes as (sum_j a_j^2 / s_j^2) * (sum_j s_j^2 W_j^2),
// smallest at s_j proportional to sqrt(a_j) for columns of similar norm. The clamp of a_j / mean(a) to
// [1/16, 16] keeps dead channels and outliers from taking the row scale over.
at::Tensor act_scale_factors(const at::Tensor& act_scale, const std::string& where) {
    const auto a = act_scale.to(torch::kFloat32);
    if (!torch::isfinite(a).all().item<bool>() || (a < 0).any().item<bool>())
        throw Error(where + ": act_scale must be finite and non-negative");
    const double mean = a.mean().item<double>();
    if (!(mean > 0)) return torch::ones_like(a);
    return (a / mean).clamp(1.0 / 16, 16.0).sqrt();
}

class LiftQuantCodec : public Codec {
public:
    explicit LiftQuantCodec(CodecSpec s)
        : Codec(std::move(s)),
          D_(spec().get_int("D")),
          d_(spec().get_int("d")),
          had_(spec().get_flag("had")),
          awq_(spec().get_flag("awq")) {
        if (D_ <= d_)
            throw Error(spec().to_string() + ": D must be greater than d (got D=" + std::to_string(D_) +
                        ", d=" + std::to_string(d_) + ")");
        if (D_ - d_ > 20)
            throw Error(spec().to_string() + ": D - d must be at most 20 (the search tries 2^(D-d) candidates)");
    }

    bool needs_act_scale() const override { return awq_; }

    BitsEstimate estimate_bits(int64_t rows, int64_t cols) const override {
        check_shape(rows, cols);
        const int64_t bits =
            code_bits(rows, cols) + rows * 16 + d_ * D_ * 16 + (had_ ? cols : 0) + (awq_ ? cols * 16 : 0);
        const double n = static_cast<double>(rows * cols);
        return {static_cast<double>(code_bits(rows, cols)) / n, static_cast<double>(bits) / n, d_ * D_ * 16};
    }

    std::string transform_note(int64_t /*rows*/, int64_t cols) const override {
        return had_ ? "hadamard " + std::to_string(hadamard_block(cols)) : std::string();
    }

    QuantizedTensor quantize(const at::Tensor& W, const QuantizeContext& ctx) const override {
        const std::string where = spec().to_string();
        if (W.dim() != 2) throw Error(where + ": weight must be a matrix");
        const int64_t rows = W.size(0), cols = W.size(1);
        check_shape(rows, cols);
        ProgressSink& sink = ctx.progress ? *ctx.progress : null_progress();
        SubProgress training(sink, 0.0, 0.3);
        const auto M16 = as_stored_fp16(lift_matrix(D_, d_, kLiftSeed, &training));
        QuantizedTensor q{spec(), rows, cols, {}};

        auto x = W.to(torch::kFloat32);
        if (awq_) {
            const at::Tensor* a = ctx.calib ? &ctx.calib->act_scale : nullptr;
            if (!a || !a->defined() || a->dim() != 1 || a->size(0) != cols)
                throw Error(where + ": awq needs calibration act_scale of " + std::to_string(cols) + " values");
            const auto s16 = as_stored_fp16(act_scale_factors(*a, where));
            x = x * s16.to(torch::kFloat32);
            q.parts.push_back({"act_scale", PartRole::Scale, s16, cols * 16, false});
        }
        if (had_) {
            const auto signs = random_signs(cols, ctx.seed);
            x = hadamard_blocks(x * signs, hadamard_block(cols));
            q.parts.push_back({"signs", PartRole::Transform, pack_bits(signs > 0, 1), cols, false});
        }
        // Per-row RMS: the codebook was trained on unit-variance Gaussians.
        const auto scales16 = as_stored_fp16(x.square().mean(1).sqrt());
        const auto scales = scales16.to(torch::kFloat32);
        x = x / torch::where(scales > 0, scales, torch::ones_like(scales)).unsqueeze(1);

        // A width d does not divide ends each row in a short chunk: padded with zeros to d weights, which the
        // search codes with the rest (the pad is never decoded into a weight; its bits are counted).
        if (cols % d_ != 0) x = torch::constant_pad_nd(x, {0, chunks(cols) * d_ - cols});
        const LiftSearch search(M16.to(torch::kFloat32));
        // About 2^26 candidate evaluations (well under a second) between cancellation checks.
        const int64_t row_work = chunks(cols) << (D_ - d_);
        const int64_t block = std::max<int64_t>(8, (int64_t(1) << 26) / row_work / 8 * 8);
        std::vector<at::Tensor> packed;
        for (int64_t r0 = 0; r0 < rows; r0 += block) {
            sink.check();
            sink.report(0.3 + 0.7 * static_cast<double>(r0) / rows, "LiftQuant nearest-code search");
            const auto chunks = x.slice(0, r0, std::min(rows, r0 + block)).reshape({-1, d_});
            packed.push_back(pack_bits(lift_codes_to_signs(search.encode(chunks), D_) > 0, 1));
        }
        sink.report(1.0, "LiftQuant nearest-code search");
        q.parts.push_back({"codes", PartRole::Codes, torch::cat(packed), code_bits(rows, cols), false});
        q.parts.push_back({"scales", PartRole::Scale, scales16, rows * 16, false});
        q.parts.push_back({"M", PartRole::Codebook, M16, d_ * D_ * 16, true});
        return q;
    }

    at::Tensor dequantize(const QuantizedTensor& q) const override {
        const std::string where = spec().to_string();
        if (q.spec != spec()) throw Error(where + ": cannot dequantize a tensor quantized as " + q.spec.to_string());
        const int64_t rows = q.rows, cols = q.cols;
        check_shape(rows, cols);
        const auto M = q.part("M").data.to(torch::kFloat32);
        const auto scales = q.part("scales").data.to(torch::kFloat32).reshape({-1});
        if (M.dim() != 2 || M.size(0) != d_ || M.size(1) != D_ || scales.size(0) != rows)
            throw Error(where + ": parts 'M' or 'scales' have the wrong shape");
        const auto& codes = q.part("codes").data;
        const int64_t row_bits = chunks(cols) * D_;
        auto out = torch::empty({rows, cols}, torch::kFloat32);
        for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
            const int64_t r1 = std::min(rows, r0 + kRowBlock);
            const int64_t first_byte = std::min(codes.numel(), r0 * row_bits / 8);
            const auto bits = unpack_bits(codes.slice(0, first_byte), 1, (r1 - r0) * row_bits);
            const auto y = bits.view({-1, D_}).to(torch::kFloat32) * 2 - 1;
            out.slice(0, r0, r1).copy_(y.matmul(M.t()).view({r1 - r0, chunks(cols) * d_}).narrow(1, 0, cols));
        }
        out.mul_(scales.unsqueeze(1));
        if (had_) {
            // The normalised block Hadamard is symmetric and orthogonal, so it is its own inverse.
            const auto signs = unpack_bits(q.part("signs").data, 1, cols).to(torch::kFloat32) * 2 - 1;
            out = hadamard_blocks(out, hadamard_block(cols)) * signs;
        }
        if (awq_) {
            const auto s = q.part("act_scale").data.to(torch::kFloat32).reshape({-1});
            if (s.size(0) != cols || !(s > 0).all().item<bool>())
                throw Error(where + ": part 'act_scale' must hold " + std::to_string(cols) + " positive values");
            out = out / s;
        }
        return out;
    }

private:
    void check_shape(int64_t rows, int64_t cols) const {
        if (rows < 1 || cols < 1)
            throw Error(spec().to_string() + ": empty weight [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    }
    // Chunks of d weights per row, the last one short when d does not divide cols.
    int64_t chunks(int64_t cols) const { return (cols + d_ - 1) / d_; }
    int64_t code_bits(int64_t rows, int64_t cols) const { return rows * chunks(cols) * D_; }

    int64_t D_, d_;
    bool had_, awq_;
};

}  // namespace

const std::vector<ParamDef>& liftquant_params() {
    static const std::vector<ParamDef> params = {
        {"D", ParamType::Int, "16", 10, 32, {},
         "Lifted dimension: code bits per chunk of d weights (bits per weight = D/d)"},
        {"d", ParamType::Int, "8", 2, 31, {},
         "Chunk length: weights coded together, below D; where it does not divide the input dimension a row ends "
         "in a short chunk, zero-padded (the pad's code bits are counted)"},
        {"had", ParamType::Flag, "1", 0, 0, {}, "Random-sign block Hadamard on the input dimension before coding"},
        {"awq", ParamType::Flag, "0", 0, 0, {},
         "Scale input channels by sqrt(mean|x| / its average), clamped to [1/4, 4], before coding (needs calibration)"},
    };
    return params;
}

std::unique_ptr<Codec> make_liftquant_codec(const CodecSpec& spec) { return std::make_unique<LiftQuantCodec>(spec); }

const std::vector<std::string>& liftquant_examples() {
    // 1.6, 2.0, 2.4 and 2.5 bits. 24/8 (3.0 bits) searches 65536 candidates per chunk, too slow for the
    // table-driven tests that run every example.
    static const std::vector<std::string> examples = {"liftquant:D=16,d=10", "liftquant:D=16,d=8",
                                                      "liftquant:D=24,d=10", "liftquant:D=20,d=8"};
    return examples;
}

}  // namespace quench
