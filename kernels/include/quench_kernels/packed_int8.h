#pragma once
// GEMV with int8 activations (llama.cpp's Q8 idea) over the packed views: x is quantized once per call and
// the inner loop is an integer dot product of the unpacked codes with it (AVX2: _mm256_maddubs_epi16). The
// fp32-activation kernels (grid_gemv, lift_gemv, lattice_gemv) stay the exact ones; these are the fast,
// approximate entry points.
//
// Activation quantization: the columns of every weight group are cut into blocks (the last block of a
// group may be shorter) of int8_block_cols(w) columns: 128 when the group is a multiple of 128 (per-row
// groups of such widths included), else 64 when a multiple of 64, else 32, for codes of 1, 2, 3 and 4
// bits (and LC-QAT's and LiftQuant's grids); 32 for other widths and trits. Larger blocks halve the per-block
// integer-to-float work; llama.cpp's K-quants use activation blocks of 256. Block k of vector b gets
// d = max|x| / 127 and xq = round(x / d) (half away from zero) in -127..127.
// So each activation is off by at most d / 2 and
//     |y[r] - (W x)[r]| <= sum_c |W[r][c]| d(block of c) / 2        (plus fp32 rounding of the sums),
// i.e. at most 1/254 of sum_c |W[r][c]| max|x over c's block|. The tests check exactly this bound.
// LiftQuant and LC-QAT quantize the projected activations their fp32 GEMVs form (p = M^T H x', A^T x'),
// so the bound applies to those projections and their integer codes.
//
// The integer math, shared by the AVX2 and the scalar path so that they agree bit for bit: per row and
// block k (blocks restart at every group; a row's count is padded to a multiple of 4 with empty blocks),
// D = sum of code * xq (exact int32), X = sum of xq, T = a D - o X with the grid's level written as
// (a c - o) m (AsymInt: a=1, o=zero code, m=1; SymInt: 1, 2^(bits-1), 1; Binary: 2, 1, 1; Seq: 2, 3, 0.25;
// Ternary: 1, 1, fp32(2/3); Unsigned: 1, 0, 1). Then in fp32, acc[k % 4] = fma(T, d * (scale * m), acc[k % 4])
// over the blocks in order, and y = (acc[0] + acc[2]) + (acc[1] + acc[3]).
#include <cstdint>

#include "quench_kernels/packed_common.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_lattice.h"
#include "quench_kernels/packed_liftquant.h"

namespace quench::kernels {

// Columns per activation run: the unit of the AVX2 integer dot (32 codes in one register).
inline constexpr int64_t kInt8Block = 32;

// Columns per activation block (one fp32 scale each) for this view, as described above.
int64_t int8_block_cols(const GridView& w);

// Same shapes and batch (1..8) as grid_gemv / lift_gemv / lattice_gemv; y = W x with int8 activations.
void grid_gemv_int8(const GridView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});
void lift_gemv_int8(const LiftView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});
void lattice_gemv_int8(const LatticeView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});

}  // namespace quench::kernels
