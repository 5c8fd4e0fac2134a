// QAM-W (arXiv 2605.26339): each weight row is L2-normalised, block-Hadamard rotated and scaled so its
// coordinates are ~N(0,1); consecutive coordinate pairs are coded jointly against one 2-D Lloyd-Max codebook
// for N(0, I2) of K = 2^k points, i.e. k/2 code bits per weight. Only the abstract is public, so the layout
// below is the reference implementation inferred in docs/methods.md section 3:
//   parts  codes (k bits per pair) | norms (fp16 per row) | codebook (fp16 [K, 2], shared by every layer)
//          [act_scale (fp16 per input channel)] [sign_seed (64 bits)]
//   decode w = norm * signs * H_B(c / sqrt(cols)) / act_scale
// coding=polar is the paper's baseline: amplitude and phase of each pair quantized separately.
// Choices where the paper is silent: coordinates have unit variance (E||p||^2 = 2), so the codebooks are
// trained on N(0, I2); a pair is two adjacent coordinates of a rotated block; the encoder normalises by the
// fp16-rounded norm it stores, so the norm adds no error of its own; random signs are optional and off by
// default (the abstract names only the Hadamard); polar coding gets the best split of its k bits.
#include "quant/qamw.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "common/progress.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "quant/codec_factories.h"
#include "quant/hadamard.h"
#include "quant/lloyd_max.h"

namespace quench {
namespace {

// Mean-square-error factor of a uniform phase quantizer with M cells: E cos(theta error) = sinc(pi / M).
double phase_gain(int phase_bits) {
    const double half = M_PI / static_cast<double>(int64_t(1) << phase_bits);
    return std::sin(half) / half;
}

class QamwCodec final : public Codec {
public:
    explicit QamwCodec(const CodecSpec& spec)
        : Codec(spec),
          k_(static_cast<int>(spec.get_int("k"))),
          block_(spec.get_int("block")),
          polar_(spec.get_choice("coding") == "polar"),
          signs_(spec.get_flag("signs")),
          act_scale_(spec.get_flag("act_scale")),
          alpha_(spec.get_real("alpha")) {
        if (!is_power_of_two(block_))
            throw Error(where() + ": block must be a power of two, got " + std::to_string(block_));
    }

    bool needs_act_scale() const override { return act_scale_; }

    BitsEstimate estimate_bits(int64_t rows, int64_t cols) const override {
        check_shape(rows, cols);
        const double n = static_cast<double>(rows * cols);
        const double code = static_cast<double>(rows * cols / 2 * k_);
        double total = code + 16.0 * rows + static_cast<double>(shared_bits());
        if (act_scale_) total += 16.0 * cols;
        if (signs_) total += 64;
        return {code / n, total / n, shared_bits()};
    }

    std::string transform_note(int64_t /*rows*/, int64_t cols) const override {
        return "hadamard " + std::to_string(qamw_block(spec(), cols));
    }

    QuantizedTensor quantize(const at::Tensor& W, const QuantizeContext& ctx) const override {
        if (W.dim() != 2) throw Error(where() + ": weight must be 2-D, got " + std::to_string(W.dim()) + "-D");
        const int64_t rows = W.size(0), cols = W.size(1);
        check_shape(rows, cols);
        QuantizedTensor q{spec(), rows, cols, {}};
        auto w = W.to(torch::kFloat32).contiguous();
        if (!torch::isfinite(w).all().item<bool>()) throw Error(where() + ": weight has non-finite values");

        at::Tensor scale16;
        if (act_scale_) {
            scale16 = activation_scale(ctx, cols);
            w = w * scale16.to(torch::kFloat32);
        }
        // The decoder multiplies by the fp16 norm, so normalise by that same rounded value.
        const auto norm16 = w.norm(2, {1}).to(torch::kFloat16);
        if (!torch::isfinite(norm16).all().item<bool>()) throw Error(where() + ": a row norm overflows fp16");
        const auto norm = norm16.to(torch::kFloat32);
        auto v = w / torch::where(norm > 0, norm, torch::ones_like(norm)).unsqueeze(1);
        if (signs_) v = v * random_signs(cols, ctx.seed);
        // Rotated unit row times sqrt(cols): coordinates have mean square exactly 1, matching N(0, I2) pairs.
        const auto pairs = hadamard_blocks(v, qamw_block(spec(), cols)).mul(std::sqrt(static_cast<double>(cols))).view({-1, 2});
        if (ctx.progress) ctx.progress->check();

        at::Tensor codes;
        QuantPart table;
        if (polar_) {
            const PolarSplit split = qamw_polar_split(k_);
            const auto& amp = lloyd_max_rayleigh(1 << split.amplitude_bits);
            const int64_t phases = int64_t(1) << split.phase_bits;
            const auto radius = pairs.pow(2).sum(1).sqrt().to(torch::kFloat64);
            const auto a = torch::bucketize(radius, torch::tensor(amp.thresholds, torch::kFloat64));
            const auto theta = torch::atan2(pairs.select(1, 1), pairs.select(1, 0)).to(torch::kFloat64);
            const auto p = theta.add(M_PI).mul(static_cast<double>(phases) / (2 * M_PI)).floor().to(torch::kLong);
            codes = a.mul(phases).add(p.clamp(0, phases - 1));
            table = {"amplitudes", PartRole::Codebook, amplitudes16(split), 0, true};
        } else {
            const auto book16 = gaussian_codebook_2d(int64_t(1) << k_).to(torch::kFloat16);
            codes = nearest_codeword_2d(pairs, book16.to(torch::kFloat32));  // encode against what is stored
            table = {"codebook", PartRole::Codebook, book16, 0, true};
        }
        table.bits = shared_bits();
        q.parts.push_back({"codes", PartRole::Codes, pack_bits(codes, k_), codes.numel() * k_, false});
        q.parts.push_back({"norms", PartRole::Norm, norm16, rows * 16, false});
        q.parts.push_back(table);
        if (act_scale_) q.parts.push_back({"act_scale", PartRole::Transform, scale16, cols * 16, false});
        if (signs_) {
            const auto seed = torch::tensor({static_cast<int64_t>(ctx.seed)}, torch::kLong);
            q.parts.push_back({"sign_seed", PartRole::Transform, seed, 64, false});
        }
        return q;
    }

    at::Tensor dequantize(const QuantizedTensor& q) const override {
        if (q.spec != spec()) throw Error(where() + ": cannot decode a tensor quantized as " + q.spec.to_string());
        const int64_t rows = q.rows, cols = q.cols;
        check_shape(rows, cols);
        check_numel(q, "norms", rows);
        if (act_scale_) check_numel(q, "act_scale", cols);
        const auto codes = unpack_bits(q.part("codes").data, k_, rows * cols / 2);
        at::Tensor pairs;
        if (polar_) {
            const auto amps = q.part("amplitudes").data.to(torch::kFloat32);
            const int64_t levels = amps.numel();
            if (!is_power_of_two(levels) || levels >= (int64_t(1) << k_))
                throw Error(where() + ": part 'amplitudes' has " + std::to_string(levels) + " levels");
            const int phase_bits = k_ - static_cast<int>(std::log2(static_cast<double>(levels)));
            const int64_t phases = int64_t(1) << phase_bits;
            const auto rho = amps.index_select(0, codes.div(phases, "floor"));
            const auto theta = codes.remainder(phases).to(torch::kFloat64).add(0.5).mul(2 * M_PI / phases).sub(M_PI);
            pairs = torch::stack({rho * theta.cos().to(torch::kFloat32), rho * theta.sin().to(torch::kFloat32)}, 1);
        } else {
            check_numel(q, "codebook", (int64_t(1) << k_) * 2);
            pairs = q.part("codebook").data.to(torch::kFloat32).view({-1, 2}).index_select(0, codes);
        }
        auto w = hadamard_blocks(pairs.view({rows, cols}).div(std::sqrt(static_cast<double>(cols))),
                                 qamw_block(spec(), cols));
        if (signs_) w = w * random_signs(cols, static_cast<uint64_t>(q.part("sign_seed").data.item<int64_t>()));
        w = w * q.part("norms").data.to(torch::kFloat32).unsqueeze(1);
        if (act_scale_) w = w / q.part("act_scale").data.to(torch::kFloat32);
        return w;
    }

private:
    std::string where() const { return "codec " + spec().to_string(); }

    void check_shape(int64_t rows, int64_t cols) const {
        if (rows < 1 || cols < 1)
            throw Error(where() + ": empty weight " + std::to_string(rows) + "x" + std::to_string(cols));
        qamw_block(spec(), cols);  // throws for an odd width
    }

    void check_numel(const QuantizedTensor& q, const std::string& name, int64_t n) const {
        if (q.part(name).data.numel() != n)
            throw Error(where() + ": part '" + name + "' has " + std::to_string(q.part(name).data.numel()) +
                        " values, expected " + std::to_string(n));
    }

    // The table every layer with this setting shares: the fp16 K x 2 codebook, or the fp16 polar radii.
    int64_t shared_bits() const {
        if (polar_) return (int64_t(1) << qamw_polar_split(k_).amplitude_bits) * 16;
        return (int64_t(1) << k_) * 2 * 16;
    }

    // Radii scaled by the phase gain: for a fixed uniform phase grid the error is
    // E(rho(r) - g r)^2 + (1 - g^2) E r^2 with g = sinc(pi / M), so the best radii are g times the Rayleigh
    // Lloyd-Max levels, with the same thresholds.
    static at::Tensor amplitudes16(const PolarSplit& split) {
        const auto& amp = lloyd_max_rayleigh(1 << split.amplitude_bits);
        return torch::tensor(amp.levels, torch::kFloat64).mul(phase_gain(split.phase_bits)).to(torch::kFloat16);
    }

    // Activation-aware scaling (the paper gives no formula): AWQ's s_j = mean|x_j|^alpha, normalised to
    // geometric mean 1 so the fp16 row norms keep their range. Columns with large activations are scaled up
    // before the row is normalised, so after dividing s back out their weight error shrinks by s_j, where it
    // costs the most output error. alpha = 0.5 is AWQ's typical grid-search result; no search is done here.
    // Dead channels are clamped at 1e-4 of the largest mean |x| so s stays finite in fp16.
    at::Tensor activation_scale(const QuantizeContext& ctx, int64_t cols) const {
        if (!ctx.calib || !ctx.calib->act_scale.defined())
            throw Error(where() + ": act_scale needs calibration statistics (CalibStats::act_scale)");
        const auto a = ctx.calib->act_scale.to(torch::kFloat64).reshape({-1});
        if (a.numel() != cols)
            throw Error(where() + ": act_scale has " + std::to_string(a.numel()) + " channels, the weight has " +
                        std::to_string(cols) + " columns");
        if (!torch::isfinite(a).all().item<bool>() || a.min().item<double>() < 0 || a.max().item<double>() <= 0)
            throw Error(where() + ": act_scale must be finite, non-negative and not all zero");
        const auto log_a = a.clamp_min(1e-4 * a.max().item<double>()).log();
        return log_a.sub(log_a.mean()).mul(alpha_).exp().to(torch::kFloat16);
    }

    int k_;
    int64_t block_;
    bool polar_, signs_, act_scale_;
    double alpha_;
};

}  // namespace

int64_t qamw_block(const CodecSpec& spec, int64_t cols) {
    if (cols < 2 || cols % 2 != 0)
        throw Error("codec " + spec.to_string() + ": the input width " + std::to_string(cols) +
                    " is not even (QAM-W codes pairs of adjacent weights)");
    int64_t block = spec.get_int("block");
    while (cols % block != 0) block /= 2;
    return block;
}

PolarSplit qamw_polar_split(int k) {
    if (k < 2 || k > 16) throw Error("qamw_polar_split: k must be in [2, 16], got " + std::to_string(k));
    // Pair error 2(1 - g^2) + g^2 mse_amplitude: the phase term grows and the amplitude term shrinks
    // geometrically in amplitude_bits, so the sum is unimodal; stop at the first increase.
    PolarSplit best;
    for (int a = 0; a < k; ++a) {
        const double g = phase_gain(k - a);
        const double mse = 2.0 * (1.0 - g * g) + g * g * lloyd_max_rayleigh(1 << a).mse;
        if (a > 0 && mse >= best.pair_mse) break;
        best = {a, k - a, mse};
    }
    return best;
}

const std::vector<ParamDef>& qamw_params() {
    static const std::vector<ParamDef> params = {
        {"k", ParamType::Int, "11", 4, 12, {},
         "Bits per coordinate pair (codebook of 2^k points): k/2 code bits per weight"},
        {"block", ParamType::Int, "128", 2, 65536, {},
         "largest Hadamard block, a power of two; each weight takes the largest power of two up to it that divides "
         "its input width"},
        {"coding", ParamType::Choice, "joint", 0, 0, {"joint", "polar"},
         "joint: 2-D Lloyd-Max codebook; polar: amplitude and phase quantized separately (the paper's baseline)"},
        {"signs", ParamType::Flag, "0", 0, 0, {},
         "Seeded random column signs before the Hadamard (stores a 64-bit seed)"},
        {"act_scale", ParamType::Flag, "0", 0, 0, {},
         "Activation-aware per-input-channel scaling s = mean|x|^alpha (needs calibration)"},
        {"alpha", ParamType::Real, "0.5", 0, 1, {}, "Exponent of the activation-aware scale"},
    };
    return params;
}

std::unique_ptr<Codec> make_qamw_codec(const CodecSpec& spec) { return std::make_unique<QamwCodec>(spec); }

const std::vector<std::string>& qamw_examples() {
    // 3.5 bpw (the paper's low variant), polar and joint at 4 bpw, and the headline 5.5 bpw activation-aware one.
    static const std::vector<std::string> examples = {"qamw:k=7", "qamw:k=8,coding=polar", "qamw:k=8,signs",
                                                      "qamw:k=11,block=128,act_scale"};
    return examples;
}

}  // namespace quench
