#pragma once
// LiftQuant's int8 GEMV by table lookup (T-MAC's idea, Wei et al. 2024): after the projection every row is a
// sum of signs times int8 activations, and four signs have only 16 patterns. So per call and vector each
// group of four projected activations q[4n .. 4n+3] gets a table of its 16 signed sums
//     T_n[c] = sum_i (bit i of c ? q[4n+i] : -q[4n+i]),     |T_n[c]| <= 508 (int16, split into two byte tables)
// and a row's integer block dot is a sum of table entries picked by its code nibbles: two byte shuffles
// (pshufb) look up 32 rows' entries at once, where the maddubs path of packed_int8.h spends a multiply per
// sign. That needs the nibbles of 32 rows side by side, so the codes are re-laid once per weight (LiftLut).
//
// The result equals lift_gemv_int8 without the table bit for bit: the same projection, the same int8
// activation blocks (packed_int8.h), the same exact integer block sums (a block's T = 2 D - X there is this
// signed sum), and the same fp32 steps in the same order. Without AVX2 (or with CpuPath::Scalar) the call
// runs that path on the view's own codes.
#include <cstdint>
#include <vector>

#include "quench_kernels/packed_common.h"
#include "quench_kernels/packed_liftquant.h"

namespace quench::kernels {

// The sign codes of one LiftView re-laid for the lookup: rows in tiles of 32, each tile's columns in the
// activation blocks of packed_int8.h (int8_block_cols of the sign grid), and per tile and block, for each
// pair of nibble positions (columns 4n..4n+3 and 4n+4..4n+7) 32 bytes: byte j < 16 holds row j's nibble of
// position n in its low half and row j + 16's in its high half, bytes 16..31 the same for position n + 1.
// Rows past the last and columns past the row's end are zero. The same size as the codes up to that padding.
struct LiftLut {
    int64_t rows = 0, plen = 0;  // the view's rows and sign columns, (cols / d) D
    int64_t block = 0;           // columns per activation block: 128, 64 or 32
    std::vector<uint8_t> bytes;  // [tiles][blocks][block / 8][32]
};

// Re-lays w's codes (threaded over tiles). std::invalid_argument naming the field for an inconsistent view.
LiftLut lift_lut(const LiftView& w, const CpuOptions& opt = {});

// y [batch, rows] = W x for x [batch, cols], batch 1..8, as lift_gemv_int8 computes it (see above); `lut`
// must come from lift_lut of this view's codes (its shape is checked).
void lift_gemv_int8(const LiftView& w, const LiftLut& lut, const float* x, float* y, int64_t batch,
                    const CpuOptions& opt = {});

}  // namespace quench::kernels
