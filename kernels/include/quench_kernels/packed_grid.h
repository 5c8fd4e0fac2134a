#pragma once
// Scalar-grid weights (RTN, GPTQ and ParetoQ; core/quant/scalar_grid.h) read straight from their stored
// parts: dequantization to fp32 / fp16 and y = W x without materialising W.
//
// A weight is q(c) * s: c the code of one weight, s the fp16 scale of its (row, group), q the grid's level:
//   AsymInt  (bits 2..8)  c - z, z the group's zero code (packed like the codes, bits wide)
//   SymInt   (bits 2..8)  c - 2^(bits-1)          (also ParetoQ's 3- and 4-bit LSQ grids)
//   Binary   (bits 1)     2c - 1                  (ParetoQ b=1)
//   Ternary  (bits 0)     (c - 1) * fp32(2/3)     (ParetoQ b=1.58; codes are trits, 5 per byte)
//   Seq      (bits 2)     (c - 1.5) * 0.5         (ParetoQ b=2: -0.75, -0.25, 0.25, 0.75)
//   Unsigned (bits 1..8)  c                       (no codec; other kernels reuse the GEMV through it)
// Each level is exact in fp32 and equals core's level table entry, so q(c) * s, one rounding, is core's
// dequantized value bit for bit.
#include <cstdint>

#include "quench_kernels/packed_common.h"

namespace quench::kernels {

enum class GridKind { AsymInt = 1, SymInt, Binary, Ternary, Seq, Unsigned };

struct GridView {
    GridKind kind = GridKind::SymInt;
    int bits = 0;                       // code width as listed above; 0 for trits
    int64_t rows = 0, cols = 0;
    int64_t group = 0;                  // columns sharing a scale, 1..cols (cols: one scale per row); when it
                                        //   does not divide cols, a row's last group is shorter
    const uint8_t* codes = nullptr;     // part "codes": one LSB-first bit stream over the row-major matrix,
    int64_t code_bytes = 0;             //   or trits c0 + 3 c1 + 9 c2 + 27 c3 + 81 c4 per byte
    const uint16_t* scales = nullptr;   // part "scales": fp16 bits [rows, grid_groups]
    const uint8_t* zeros = nullptr;     // part "zeros" (AsymInt only): bits-wide zero codes, [rows, grid_groups]
    int64_t zero_bytes = 0;
};

// std::invalid_argument naming the field unless the view is consistent (sizes checked against the shape).
void validate(const GridView& w);

// Groups per row: ceil(cols / group).
int64_t grid_groups(const GridView& w);

// q(c) = (c - offset) * mul, exact in fp32; AsymInt's offset is each group's zero code instead (offset 0 here).
struct GridLevel {
    float offset = 0, mul = 1;
};
GridLevel grid_level(const GridView& w);

// out: [rows, cols] row-major. fp16 output is the fp32 value rounded to nearest even.
void grid_dequantize_f32(const GridView& w, float* out, const CpuOptions& opt = {});
void grid_dequantize_f16(const GridView& w, uint16_t* out, const CpuOptions& opt = {});

// y[b][r] = sum_c W[r][c] x[b][c] for b < batch (1..8); x [batch, cols], y [batch, rows]. The per-group sums
// run in fp32 and are then scaled, so results differ from a dense product by rounding only.
void grid_gemv(const GridView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt = {});

#ifdef QUENCH_HAVE_CUDA
// Same contracts with every pointer (codes, scales, zeros, x, y, out) on the device. Asynchronous on the
// default stream, like cuBLAS: results are ready at the next synchronising call (cudaMemcpy,
// cudaDeviceSynchronize); a bad launch throws std::runtime_error here. 16-byte aligned codes and x (as
// cudaMalloc returns) take the vectorised path.
void grid_dequantize_f32_cuda(const GridView& w, float* out);
void grid_dequantize_f16_cuda(const GridView& w, uint16_t* out);
void grid_gemv_cuda(const GridView& w, const float* x, float* y, int64_t batch);
#endif

}  // namespace quench::kernels
