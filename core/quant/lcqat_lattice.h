#pragma once
// LC-QAT's lattice codec: the UniSVQ PTQ initialisation of LC-QAT (arXiv 2606.10531 / 2606.10520, code
// github.com/AI9Stars/UniSVQ; notes in docs/methods.md section 1). In the incoherent
// domain every 4 consecutive weights of a row are one code q in {0..3}^4 (one 8-bit index, 2.0 bpw)
// decoded through an affine map, and the layer weight is
//
//     W = diag(sv) * H_out * Wt * H_in * diag(su),      Wt[o, 4j:4j+4] = A q[o, 4j:4j+4] + b,
//
// with H_in / H_out blockwise orthonormal Walsh-Hadamard transforms over the columns / rows, su and sv
// random signs at PTQ time (sv also carries the weight scale). The codes are fitted by Hessian-aware
// BlockLDLQ (quant/ldlq.h). Which code version each choice follows is written at the top of the .cpp.
//
// The parameterisation is explicit (LcqatWeight) so LC-QAT's QAT can start from exactly the PTQ model.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "quant/quantized_tensor.h"

namespace quench {

// The 256 codewords c(q) = A q + b with A = s*O, b = -s*O*(1.5*1), s = 1/sqrt(1.25): for O orthogonal a
// rotated, zero-mean, unit-variance-per-coordinate image of the grid {0..3}^4.
struct LcqatCodebook {
    at::Tensor O;  // [4, 4] fp32 orthogonal
    at::Tensor A;  // [4, 4] fp32
    at::Tensor b;  // [4] fp32

    // "ortho": UniSVQ v0's fixed random rotation (lib/codebook/ortho_dim4.pt); "identity": HEAD's O = I.
    static LcqatCodebook make(const std::string& kind);
    at::Tensor codewords() const;                   // [256, 4]: row i decodes index i (lcqat_index_digits)
    at::Tensor decode(const at::Tensor& q) const;   // q [..., 4] in {0..3} -> codewords [..., 4] fp32
    // Exact nearest codeword of each row of w [N, 4]: because A is a scaled rotation, the distance to A q + b
    // equals s * |O^T (w - b) / s - q|, and the box {0..3}^4 is a product, so rounding each coordinate of
    // O^T (w - b) / s and clamping it to [0, 3] is exact. Returns q [N, 4] int64.
    at::Tensor nearest(const at::Tensor& w) const;
};

// A code's 8-bit index and its digits: index = 64 q0 + 16 q1 + 4 q2 + q3 (UniSVQ's idx_to_quant_weight:
// first coordinate most significant). Indices [...] <-> digits [..., 4].
at::Tensor lcqat_index_of(const at::Tensor& q);
at::Tensor lcqat_index_digits(const at::Tensor& index);

// The stored model in LC-QAT's own terms. QAT keeps q as its latent (W_lat = (q - 1.5) / kappa) and trains
// A, b, su and sv; dense() of the parameters read from a QuantizedTensor is the codec's dequantization.
struct LcqatWeight {
    at::Tensor q;   // [rows, cols] int64 in {0..3}: the lattice coordinates
    at::Tensor A;   // [4, 4] fp32
    at::Tensor b;   // [4] fp32
    at::Tensor su;  // [cols] fp32: input-side scales (random signs after PTQ)
    at::Tensor sv;  // [rows] fp32: output-side scales (random signs times the weight scale after PTQ)
    int64_t had_in = 1, had_out = 1;  // Hadamard block sizes over columns / rows (1 = no transform)

    static LcqatWeight from(const QuantizedTensor& t);  // throws quench::Error naming a missing or misshapen part
    at::Tensor dense() const;                           // [rows, cols] fp32
};

// Hadamard block sizes the spec's had= gives for a shape: columns and rows each the largest power of two
// <= had that divides their width (cols 576, had=128: 64). had=0 gives 1, 1. quench::Error for an empty
// weight or cols not a multiple of 4.
struct LcqatBlocks {
    int64_t in = 1, out = 1;
};
LcqatBlocks lcqat_blocks(const CodecSpec& spec, int64_t rows, int64_t cols);

}  // namespace quench
