#pragma once
// Scalar grids: the rounding step RTN, GPTQ and ParetoQ share. A grid maps each weight of a group to the
// nearest of a few levels given that group's parameters (a scale, plus a zero code for the asymmetric
// integer grid) and stores its codes compactly. GPTQ takes any grid as its rounding step, so the integer
// grids and the ParetoQ grids get error feedback through one implementation.
//
// Grids:
//   int, asymmetric (b in 2..8): levels (c - z)·s, c in [0, 2^b), min/max range widened to contain 0
//       (GPTQ's quantizer), s = (max - min) / (2^b - 1), zero code z = round(-min / s) stored as a b-bit code.
//   int, symmetric (b in 2..8): levels k·s, k in [-2^(b-1), 2^(b-1) - 1], s = max|w| / (2^(b-1) - 1), so
//       grid-valued weights are reproduced exactly and the extra negative level is free headroom for GPTQ.
//   ParetoQ (facebookresearch/ParetoQ models/utils_quant.py, the code's version where it differs from the
//   paper), per-group alpha with the code's initialisation and its alpha >= 1e-5 floor:
//       b=1     binary  alpha·{-1, +1}, alpha = mean|w|; w = 0 maps to +alpha (1-bit codes have no zero)
//       b=1.58  ternary alpha·{-2/3, 0, +2/3}, alpha = max|w|; round(clip(x, -0.99, 0.99)·1.5)/1.5
//       b=2     SEQ     alpha·{-0.75, -0.25, +0.25, +0.75}, alpha = max|w|; no zero level
//       b=3, 4  LSQ     alpha·k, k in [-2^(b-1), 2^(b-1) - 1], alpha = max|w| / (2^(b-1) - 1)
// Rounding is to the nearest level; a weight exactly midway between two levels of a symmetric grid goes to
// the upper one (the reference's round-half-to-even differs only on such exact ties). Every scale is
// rounded to fp16 (clamped to [2^-24, 65504]) before codes are chosen, so rounding uses exactly the scale
// dequantization reads back.
//
// Code storage: b-bit codes through pack_bits; ternary codes 5 trits per byte (3^5 = 243 <= 256), i.e.
// 1.6 bits per weight, counted as ceil(8n / 5) bits for n codes.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/codec.h"

namespace quench {

// Per-row parameters of one group of columns, at storage precision.
struct GridParams {
    at::Tensor scale;  // [n, 1] fp32 holding fp16-representable values
    at::Tensor zero;   // [n, 1] fp32 integer-valued zero codes; undefined for grids without a zero point
};

class ScalarGrid {
public:
    virtual ~ScalarGrid() = default;
    virtual int64_t num_codes() const = 0;
    // Bits of one stored zero code; 0 when the grid has no zero point.
    virtual int zero_bits() const { return 0; }
    // Parameters for each row of w [n, k] (that row's weights in one group).
    virtual GridParams fit(const at::Tensor& w) const = 0;
    // Codes (int64 in [0, num_codes)) of the nearest level for each weight of w [n, k].
    virtual at::Tensor encode(const at::Tensor& w, const GridParams& p) const = 0;
    // Level values [n, k] of codes [n, k].
    virtual at::Tensor decode(const at::Tensor& codes, const GridParams& p) const = 0;

    // Packed codes and their exact cost.
    at::Tensor pack(const at::Tensor& codes) const;
    at::Tensor unpack(const at::Tensor& packed, int64_t n) const;
    int64_t code_bits(int64_t n) const;
};

std::unique_ptr<ScalarGrid> make_int_grid(int bits, bool sym);
// bits in {1, 1.58, 2, 3, 4}; otherwise quench::Error prefixed with where.
std::unique_ptr<ScalarGrid> make_paretoq_grid(double bits, const std::string& where);

// Groups of a row: ceil(cols / group) of them, `group` columns each but the last, which holds what is left
// (cols 576 with g=128: four groups of 128 and one of 64). Every group has its own scale (and zero code), so a
// short last group costs exactly what a full one does.
int64_t group_count(int64_t cols, int64_t group);
// Runs of equal-width groups: the whole groups, then the short last one where group does not divide cols.
struct GroupSpan {
    int64_t col0, width, groups, first_group;
};
std::vector<GroupSpan> group_spans(int64_t cols, int64_t group);

// Per-(row, group) parameters of a whole weight.
struct GroupedParams {
    at::Tensor scale;  // fp32 [rows, groups], fp16-representable
    at::Tensor zero;   // fp32 [rows, groups], or undefined when the grid has no zero point
    // The parameters of a span's groups as ScalarGrid takes them: one row per (row, group), [rows * groups, 1].
    GridParams span(const GroupSpan& sp, int64_t rows) const;
};

// Codes and per-(row, group) parameters of a whole weight: what store_grouped writes.
struct GroupedCodes {
    at::Tensor codes;  // int64 [rows, cols]
    at::Tensor scale;  // fp32 [rows, groups], fp16-representable
    at::Tensor zero;   // fp32 [rows, groups], or undefined when the grid has no zero point
};

// Columns per group: g, or cols when g = 0 (one group per output channel) or g > cols; g need not divide
// cols (see group_count). quench::Error naming the spec for an empty weight or a negative g.
int64_t group_size(const CodecSpec& spec, int64_t g, int64_t rows, int64_t cols);
// quench::Error unless W is a finite 2-D float32 tensor.
void check_weight(const CodecSpec& spec, const at::Tensor& W);

// Each group's parameters fitted on its own weights.
GroupedParams fit_grouped(const ScalarGrid& grid, const at::Tensor& W, int64_t group);
// Plain round-to-nearest: each group fitted and rounded on its own.
GroupedCodes round_grouped(const ScalarGrid& grid, const at::Tensor& W, int64_t group);

// The stored form: "codes" (packed, row-major [rows, cols]), "scales" (fp16 [rows, groups]) and, for grids
// with a zero point, "zeros" (packed zero codes, row-major [rows, groups]); groups = group_count(cols, group).
QuantizedTensor store_grouped(const CodecSpec& spec, const ScalarGrid& grid, const GroupedCodes& gc);
BitsEstimate grouped_bits(const ScalarGrid& grid, int64_t rows, int64_t cols, int64_t group);
// Reconstructs the weight from the parts (group: columns per group, from group_size); quench::Error when q
// was made by another spec or its parts are malformed.
at::Tensor load_grouped(const CodecSpec& spec, const ScalarGrid& grid, int64_t group, const QuantizedTensor& q);

// A codec storing store_grouped's form. As is, it rounds each group to nearest (RTN, ParetoQ PTQ); GPTQ
// overrides quantize to choose codes with error feedback.
class GroupedGridCodec : public Codec {
public:
    // g: group size in columns, 0 = one group per output channel.
    GroupedGridCodec(CodecSpec spec, std::unique_ptr<ScalarGrid> grid, int64_t g)
        : Codec(std::move(spec)), grid_(std::move(grid)), g_(g) {}
    BitsEstimate estimate_bits(int64_t rows, int64_t cols) const override {
        return grouped_bits(*grid_, rows, cols, group_size(spec(), g_, rows, cols));
    }
    QuantizedTensor quantize(const at::Tensor& W, const QuantizeContext& ctx) const override;
    at::Tensor dequantize(const QuantizedTensor& q) const override {
        return load_grouped(spec(), *grid_, group_size(spec(), g_, q.rows, q.cols), q);
    }
    // The grid the codes live on and the columns per group for a [rows, cols] weight (views of the levels).
    const ScalarGrid& grid() const { return *grid_; }
    int64_t group_columns(int64_t rows, int64_t cols) const { return group_size(spec(), g_, rows, cols); }

protected:
    int64_t group_for(const at::Tensor& W) const { return group_size(spec(), g_, W.size(0), W.size(1)); }

private:
    std::unique_ptr<ScalarGrid> grid_;
    int64_t g_;
};

}  // namespace quench
