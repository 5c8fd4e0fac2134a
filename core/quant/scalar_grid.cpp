#include "quant/scalar_grid.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "quant/bitpack.h"

namespace quench {
namespace {

// fp16 storage precision; the clamp keeps every scale nonzero (no division by zero for all-zero groups)
// and finite.
at::Tensor to_fp16_scale(const at::Tensor& s) {
    return s.clamp(std::ldexp(1.0, -24), 65504.0).to(torch::kHalf).to(torch::kFloat);
}

int bits_for(int64_t num_codes) {
    int b = 0;
    while ((int64_t(1) << b) < num_codes) ++b;
    return b;
}

std::string shape_text(int64_t rows, int64_t cols) {
    return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

// Elementwise over x [n, k] with per-row parameters, as a plain loop: GPTQ rounds one [rows, 1] column at
// a time, and per-op thread-pool dispatch (torch's bucketize parallelises from 200 elements) costs more than
// the work, dramatically so on a loaded machine. Large inputs (RTN on a whole weight) still split by rows.
template <typename In, typename Out, typename F>
at::Tensor per_row(const at::Tensor& x, const GridParams& p, at::ScalarType out_type, F f) {
    const auto xc = x.contiguous(), s = p.scale.contiguous();
    const auto z = p.zero.defined() ? p.zero.contiguous() : at::Tensor();
    const int64_t n = xc.size(0), k = xc.size(1);
    if (s.numel() != n || (z.defined() && z.numel() != n)) throw Error("scalar grid: parameters do not match the rows");
    auto out = torch::empty({n, k}, out_type);
    const In* xp = xc.data_ptr<In>();
    const float* sp = s.data_ptr<float>();
    const float* zp = z.defined() ? z.data_ptr<float>() : nullptr;
    Out* op = out.data_ptr<Out>();
    at::parallel_for(0, n, std::max<int64_t>(1, 65536 / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r)
            for (int64_t c = 0; c < k; ++c) op[r * k + c] = f(xp[r * k + c], sp[r], zp ? zp[r] : 0.0f);
    });
    return out;
}

// Levels (c - z)·s on codes c in [0, 2^b): GPTQ's asymmetric min/max quantizer.
class AsymIntGrid final : public ScalarGrid {
public:
    explicit AsymIntGrid(int bits) : bits_(bits), maxq_(static_cast<float>((1 << bits) - 1)) {}
    int64_t num_codes() const override { return static_cast<int64_t>(maxq_) + 1; }
    int zero_bits() const override { return bits_; }
    GridParams fit(const at::Tensor& w) const override {
        // The range always contains 0, so the zero code fits in b bits and 0 is exactly representable.
        const auto lo = w.amin(1, true).clamp_max(0), hi = w.amax(1, true).clamp_min(0);
        const auto s = to_fp16_scale((hi - lo) / static_cast<double>(maxq_));
        return {s, (-lo / s).round().clamp(0.0, static_cast<double>(maxq_))};
    }
    at::Tensor encode(const at::Tensor& w, const GridParams& p) const override {
        const float maxq = maxq_;  // nearbyint rounds half to even, as torch.round in the reference
        return per_row<float, int64_t>(w, p, torch::kLong, [maxq](float x, float s, float z) {
            return static_cast<int64_t>(std::min(std::max(std::nearbyint(x / s) + z, 0.0f), maxq));
        });
    }
    at::Tensor decode(const at::Tensor& codes, const GridParams& p) const override {
        return per_row<int64_t, float>(codes, p, torch::kFloat,
                                       [](int64_t c, float s, float z) { return (static_cast<float>(c) - z) * s; });
    }

private:
    int bits_;
    float maxq_;
};

// Levels table[c]·alpha with a per-row alpha and no zero point: the symmetric integer grid and every
// ParetoQ grid. Rounding is nearest-level through the midpoints between levels; a weight exactly on a
// midpoint goes to the upper level (so 0 becomes +alpha in the binary grid).
class LevelGrid final : public ScalarGrid {
public:
    enum class Init { MeanAbs, MaxAbs };  // alpha = mean|w|, or max|w| / divisor
    LevelGrid(const std::vector<double>& levels, Init init, double divisor, double floor)
        : init_(init), divisor_(divisor), floor_(floor) {
        for (std::size_t i = 0; i < levels.size(); ++i) {
            levels_.push_back(static_cast<float>(levels[i]));
            if (i > 0) mids_.push_back(static_cast<float>((levels[i - 1] + levels[i]) / 2));
        }
    }
    int64_t num_codes() const override { return static_cast<int64_t>(levels_.size()); }
    GridParams fit(const at::Tensor& w) const override {
        const auto a = init_ == Init::MeanAbs ? w.abs().mean(1, true) : w.abs().amax(1, true) / divisor_;
        return {to_fp16_scale(a.clamp_min(floor_)), {}};
    }
    at::Tensor encode(const at::Tensor& w, const GridParams& p) const override {
        return per_row<float, int64_t>(w, p, torch::kLong, [this](float x, float s, float) {
            return static_cast<int64_t>(std::upper_bound(mids_.begin(), mids_.end(), x / s) - mids_.begin());
        });
    }
    at::Tensor decode(const at::Tensor& codes, const GridParams& p) const override {
        return per_row<int64_t, float>(codes, p, torch::kFloat,
                                       [this](int64_t c, float s, float) { return levels_[c] * s; });
    }

private:
    std::vector<float> levels_, mids_;
    Init init_;
    double divisor_, floor_;
};

std::vector<double> integer_levels(int bits) {
    std::vector<double> out;
    for (int64_t k = -(int64_t(1) << (bits - 1)); k < (int64_t(1) << (bits - 1)); ++k)
        out.push_back(static_cast<double>(k));
    return out;
}

const int64_t kTritWeights[5] = {1, 3, 9, 27, 81};

at::Tensor pack_trits(const at::Tensor& codes) {
    auto c = codes.reshape({-1}).to(torch::kLong);
    const int64_t n = c.numel(), m = (n + 4) / 5;
    if (n && (c.min().item<int64_t>() < 0 || c.max().item<int64_t>() > 2))
        throw Error("pack_trits: code out of range for a trit");
    auto padded = torch::zeros({m * 5}, torch::kLong);
    padded.narrow(0, 0, n).copy_(c);
    const auto w = torch::from_blob(const_cast<int64_t*>(kTritWeights), {5}, torch::kLong);
    return (padded.view({m, 5}) * w).sum(1).to(torch::kUInt8);
}

at::Tensor unpack_trits(const at::Tensor& packed, int64_t n) {
    const int64_t m = (n + 4) / 5;
    if (packed.scalar_type() != torch::kUInt8 || packed.dim() != 1 || packed.numel() < m)
        throw Error("unpack_trits: packed codes hold " + std::to_string(packed.numel()) + " bytes, " +
                    std::to_string(m) + " needed for " + std::to_string(n) + " trits");
    auto v = packed.narrow(0, 0, m).to(torch::kLong).view({m, 1});
    if (m && v.max().item<int64_t>() > 242) throw Error("unpack_trits: byte above 242 is not 5 trits");
    const auto w = torch::from_blob(const_cast<int64_t*>(kTritWeights), {5}, torch::kLong);
    return torch::div(v, w, "floor").remainder(3).reshape({-1}).narrow(0, 0, n);
}

}  // namespace

GridParams GroupedParams::span(const GroupSpan& sp, int64_t rows) const {
    const auto pick = [&](const at::Tensor& t) {
        return t.defined() ? t.narrow(1, sp.first_group, sp.groups).contiguous().view({rows * sp.groups, 1})
                           : at::Tensor();
    };
    return {pick(scale), pick(zero)};
}

at::Tensor ScalarGrid::pack(const at::Tensor& codes) const {
    return num_codes() == 3 ? pack_trits(codes) : pack_bits(codes, bits_for(num_codes()));
}

at::Tensor ScalarGrid::unpack(const at::Tensor& packed, int64_t n) const {
    return num_codes() == 3 ? unpack_trits(packed, n) : unpack_bits(packed, bits_for(num_codes()), n);
}

int64_t ScalarGrid::code_bits(int64_t n) const {
    return num_codes() == 3 ? (8 * n + 4) / 5 : n * bits_for(num_codes());
}

std::unique_ptr<ScalarGrid> make_int_grid(int bits, bool sym) {
    if (bits < 2 || bits > 8) throw Error("integer grid: bits must be in [2, 8], got " + std::to_string(bits));
    if (!sym) return std::make_unique<AsymIntGrid>(bits);
    return std::make_unique<LevelGrid>(integer_levels(bits), LevelGrid::Init::MaxAbs, double((1 << (bits - 1)) - 1),
                                       0.0);
}

std::unique_ptr<ScalarGrid> make_paretoq_grid(double bits, const std::string& where) {
    constexpr double kAlphaFloor = 1e-5;  // the reference clamps alpha here during training
    using Init = LevelGrid::Init;
    if (bits == 1) return std::make_unique<LevelGrid>(std::vector<double>{-1, 1}, Init::MeanAbs, 1.0, kAlphaFloor);
    if (std::abs(bits - 1.58) < 1e-9)
        return std::make_unique<LevelGrid>(std::vector<double>{-2.0 / 3, 0, 2.0 / 3}, Init::MaxAbs, 1.0, kAlphaFloor);
    if (bits == 2)
        return std::make_unique<LevelGrid>(std::vector<double>{-0.75, -0.25, 0.25, 0.75}, Init::MaxAbs, 1.0,
                                           kAlphaFloor);
    if (bits == 3 || bits == 4) {
        const int b = static_cast<int>(bits);
        return std::make_unique<LevelGrid>(integer_levels(b), Init::MaxAbs, double((1 << (b - 1)) - 1), kAlphaFloor);
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", bits);
    throw Error(where + ": ParetoQ grids exist for b = 1, 1.58, 2, 3, 4, got b=" + buf);
}

int64_t group_size(const CodecSpec& spec, int64_t g, int64_t rows, int64_t cols) {
    if (rows < 1 || cols < 1) throw Error(spec.to_string() + ": empty weight " + shape_text(rows, cols));
    if (g < 0) throw Error(spec.to_string() + ": group size g=" + std::to_string(g) + " is negative");
    return g == 0 ? cols : std::min(g, cols);
}

int64_t group_count(int64_t cols, int64_t group) { return (cols + group - 1) / group; }

std::vector<GroupSpan> group_spans(int64_t cols, int64_t group) {
    std::vector<GroupSpan> out;
    const int64_t whole = cols / group, tail = cols - whole * group;
    if (whole > 0) out.push_back({0, group, whole, 0});
    if (tail > 0) out.push_back({whole * group, tail, 1, whole});
    return out;
}

void check_weight(const CodecSpec& spec, const at::Tensor& W) {
    if (!W.defined() || W.dim() != 2 || W.scalar_type() != torch::kFloat)
        throw Error(spec.to_string() + ": the weight must be a 2-D float32 tensor");
    if (!torch::isfinite(W).all().item<bool>()) throw Error(spec.to_string() + ": the weight has non-finite values");
}

GroupedParams fit_grouped(const ScalarGrid& grid, const at::Tensor& W, int64_t group) {
    const int64_t rows = W.size(0), cols = W.size(1), groups = group_count(cols, group);
    GroupedParams out{torch::empty({rows, groups}), grid.zero_bits() ? torch::empty({rows, groups}) : at::Tensor()};
    for (const GroupSpan& sp : group_spans(cols, group)) {
        const auto w = W.narrow(1, sp.col0, sp.groups * sp.width).contiguous().view({rows * sp.groups, sp.width});
        const GridParams p = grid.fit(w);
        out.scale.narrow(1, sp.first_group, sp.groups).copy_(p.scale.view({rows, sp.groups}));
        if (p.zero.defined()) out.zero.narrow(1, sp.first_group, sp.groups).copy_(p.zero.view({rows, sp.groups}));
    }
    return out;
}

GroupedCodes round_grouped(const ScalarGrid& grid, const at::Tensor& W, int64_t group) {
    const int64_t rows = W.size(0), cols = W.size(1);
    const GroupedParams gp = fit_grouped(grid, W, group);
    auto codes = torch::empty({rows, cols}, torch::kLong);
    for (const GroupSpan& sp : group_spans(cols, group)) {
        const int64_t n = sp.groups * sp.width;
        const auto w = W.narrow(1, sp.col0, n).contiguous().view({rows * sp.groups, sp.width});
        codes.narrow(1, sp.col0, n).copy_(grid.encode(w, gp.span(sp, rows)).view({rows, n}));
    }
    return {codes, gp.scale, gp.zero};
}

QuantizedTensor store_grouped(const CodecSpec& spec, const ScalarGrid& grid, const GroupedCodes& gc) {
    QuantizedTensor q{spec, gc.codes.size(0), gc.codes.size(1), {}};
    const int64_t n_params = gc.scale.numel();
    q.parts.push_back({"codes", PartRole::Codes, grid.pack(gc.codes), grid.code_bits(gc.codes.numel())});
    q.parts.push_back({"scales", PartRole::Scale, gc.scale.to(torch::kHalf).contiguous(), n_params * 16});
    if (const int zb = grid.zero_bits())
        q.parts.push_back({"zeros", PartRole::Scale, pack_bits(gc.zero.to(torch::kLong), zb), n_params * zb});
    return q;
}

BitsEstimate grouped_bits(const ScalarGrid& grid, int64_t rows, int64_t cols, int64_t group) {
    const int64_t n = rows * cols, n_params = rows * group_count(cols, group);
    const int64_t code = grid.code_bits(n), total = code + n_params * (16 + grid.zero_bits());
    return {static_cast<double>(code) / static_cast<double>(n), static_cast<double>(total) / static_cast<double>(n)};
}

at::Tensor load_grouped(const CodecSpec& spec, const ScalarGrid& grid, int64_t group, const QuantizedTensor& q) {
    if (q.spec != spec)
        throw Error(spec.to_string() + ": cannot dequantize a tensor quantized with " + q.spec.to_string());
    const int64_t rows = q.rows, cols = q.cols, groups = group_count(cols, group);
    const at::Tensor& scales = q.part("scales").data;
    if (scales.scalar_type() != torch::kHalf || scales.sizes() != at::IntArrayRef{rows, groups})
        throw Error(spec.to_string() + ": part 'scales' must be fp16 " + shape_text(rows, groups) + ", got " +
                    std::string(c10::toString(scales.scalar_type())) + " " + c10::str(scales.sizes()));
    GroupedParams gp{scales.to(torch::kFloat), {}};
    if (const int zb = grid.zero_bits())
        gp.zero = unpack_bits(q.part("zeros").data, zb, rows * groups).to(torch::kFloat).view({rows, groups});
    const auto codes = grid.unpack(q.part("codes").data, rows * cols).view({rows, cols});
    auto out = torch::empty({rows, cols}, torch::kFloat);
    for (const GroupSpan& sp : group_spans(cols, group)) {
        const int64_t n = sp.groups * sp.width;
        const auto c = codes.narrow(1, sp.col0, n).contiguous().view({rows * sp.groups, sp.width});
        out.narrow(1, sp.col0, n).copy_(grid.decode(c, gp.span(sp, rows)).view({rows, n}));
    }
    return out;
}

QuantizedTensor GroupedGridCodec::quantize(const at::Tensor& W, const QuantizeContext&) const {
    check_weight(spec(), W);
    torch::NoGradGuard no_grad;
    return store_grouped(spec(), grid(), round_grouped(grid(), W, group_for(W)));
}

}  // namespace quench
