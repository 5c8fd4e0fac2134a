#pragma once
// Int8 GEMV by table lookup for codes of 1 to 3 bits (T-MAC's idea, Wei et al. 2024). A row's integer block
// dot D = sum_c code_c q_c (packed_int8.h) splits into bit planes, D = sum_p 2^p sum_c bit_p(c) q_c, and four
// bits have only 16 patterns. So per call and vector each group of four int8 activations q[4n .. 4n+3] gets a
// table of its 16 partial sums
//     T_n[c] = sum_i (bit i of c) q[4n+i],      |T_n[c]| <= 508 (int16, split into two byte tables)
// and a plane's block dot is a sum of table entries picked by the rows' code nibbles: byte shuffles (pshufb)
// look up 32 rows at once, where the maddubs path spends a decode and a multiply per code. That needs the
// nibbles of 32 rows side by side, so the codes are re-laid once per weight (Int8Lut), with the scales and
// zero codes of each 32-row tile transposed beside them.
//
// The result equals the maddubs path (grid_gemv_int8, lift_gemv_int8, lattice_gemv_int8 without a table) bit
// for bit: the same activation blocks and rounding, the same exact integers D, X and T = a D - o X, and the
// same fp32 steps in the same order. Without AVX2 (or with CpuPath::Scalar) the calls run that path on the
// view's own codes.
//
// Which codes: GridView with 1 to 3 bits of any kind but ternary (2- and 3-bit RTN and GPTQ grids, ParetoQ's
// SEQ, 3-bit and binary grids), LiftQuant's sign codes and LC-QAT's 2-bit lattice codes (both over their
// projected inputs). Each plane costs one lookup pass, so 4-bit codes are faster on the maddubs path, which
// decodes a nibble as cheaply as a bit (measured in docs/benchmarks.md).
#include <cstdint>
#include <vector>

#include "quench_kernels/packed_common.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_lattice.h"
#include "quench_kernels/packed_liftquant.h"

namespace quench::kernels {

// A grid's codes re-laid for the lookup. Rows in tiles of 32; each row's groups cut into the activation blocks
// of packed_int8.h (int8_block_cols: 128, 64 or 32 columns, the last of a group possibly short); per tile,
// block and bit plane, for each pair of nibble positions (block columns 4n..4n+3 and 4n+4..4n+7) 32 bytes:
// byte j < 16 holds row j's nibble of position n in its low half and row j + 16's in its high half, bytes
// 16..31 the same for position n + 1. Rows past the last and columns past a block's width are zero.
struct Int8Lut {
    GridKind kind = GridKind::Binary;
    int bits = 0;                  // 1 to 3: bit planes
    int64_t rows = 0, cols = 0, group = 0;
    int64_t block = 0;             // columns per activation block
    std::vector<uint8_t> codes;    // [tiles][blocks][bits][block / 8][32]
    std::vector<uint16_t> scales;  // fp16 [tiles][groups][32], zero past the last row
    std::vector<uint8_t> zeros;    // AsymInt: zero codes [tiles][groups][32]; empty otherwise
};

// Whether a table applies: codes of 1 to 3 bits of a kind other than ternary.
bool has_int8_lut(const GridView& w);

// Re-lays w's codes (threaded over tiles); std::invalid_argument naming the field for an inconsistent view
// or one without a table (has_int8_lut false). LiftQuant and LC-QAT: the tables of their code grids.
Int8Lut int8_lut(const GridView& w, const CpuOptions& opt = {});
Int8Lut int8_lut(const LiftView& w, const CpuOptions& opt = {});
Int8Lut int8_lut(const LatticeView& w, const CpuOptions& opt = {});

// y [batch, rows] = W x for x [batch, cols], batch 1..8, as the same call without `lut` computes it; `lut`
// must come from int8_lut of this view (its shape and kind are checked).
void grid_gemv_int8(const GridView& w, const Int8Lut& lut, const float* x, float* y, int64_t batch,
                    const CpuOptions& opt = {});
void lift_gemv_int8(const LiftView& w, const Int8Lut& lut, const float* x, float* y, int64_t batch,
                    const CpuOptions& opt = {});
void lattice_gemv_int8(const LatticeView& w, const Int8Lut& lut, const float* x, float* y, int64_t batch,
                       const CpuOptions& opt = {});

}  // namespace quench::kernels
