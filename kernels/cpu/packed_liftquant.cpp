// LiftQuant on the CPU. Dequantization decodes row by row in core's order; the GEMV projects x through the
// transforms and M once per call, then runs the binary grid GEMV over the sign bits (see the header).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_liftquant.h"

namespace quench::kernels {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("lift view: " + what); }

int64_t hadamard_block(int64_t cols) { return cols & -cols; }

std::vector<float> lift_matrix(const LiftView& w) {
    std::vector<float> M(static_cast<std::size_t>(w.d) * w.D);
    for (std::size_t i = 0; i < M.size(); ++i) M[i] = half_to_float(w.M[i]);
    return M;
}

// Row r of W into out[0, cols), each step as core does it. The last chunk of a row whose width d does not
// divide is decoded only as far as the row goes (its pad columns are not weights).
void dequant_row(const LiftView& w, const std::vector<float>& M, int64_t r, float* out) {
    const int64_t chunks = lift_chunks(w);
    for (int64_t j = 0; j < chunks; ++j) {
        const int64_t bit = (r * chunks + j) * w.D;
        const uint64_t y = detail::load_u64(w.codes, w.code_bytes, bit >> 3) >> (bit & 7);
        const int width = static_cast<int>(std::min<int64_t>(w.d, w.cols - j * w.d));
        for (int i = 0; i < width; ++i) {
            // (y M^T)[i] summed over k in order, as the matmul's kernel accumulates it; y_k M is exact.
            const float* m = M.data() + static_cast<int64_t>(i) * w.D;
            float acc = 0.f;
            for (int k = 0; k < w.D; ++k) acc += ((y >> k) & 1u) ? m[k] : -m[k];
            out[j * w.d + i] = acc;
        }
    }
    const float s = half_to_float(w.scales[r]);
    for (int64_t c = 0; c < w.cols; ++c) out[c] *= s;
    if (w.signs) {
        const int64_t block = hadamard_block(w.cols);
        detail::fwht_blocks(out, w.cols, block);
        const float norm = detail::hadamard_norm(block);
        for (int64_t c = 0; c < w.cols; ++c)
            out[c] = (out[c] / norm) * (((w.signs[c >> 3] >> (c & 7)) & 1u) ? 1.0f : -1.0f);
    }
    if (w.act_scale)
        for (int64_t c = 0; c < w.cols; ++c) out[c] /= half_to_float(w.act_scale[c]);
}

void dequantize(const LiftView& w, float* f32, uint16_t* f16, const CpuOptions& opt) {
    validate(w);
    if (!f32 && !f16) bad("output pointer is null");
    const std::vector<float> M = lift_matrix(w);
    detail::parallel_rows(w.rows, opt.threads, [&](int64_t r0, int64_t r1) {
        std::vector<float> row(f16 ? w.cols : 0);
        for (int64_t r = r0; r < r1; ++r) {
            float* out = f16 ? row.data() : f32 + r * w.cols;
            dequant_row(w, M, r, out);
            if (f16)
                for (int64_t c = 0; c < w.cols; ++c) f16[r * w.cols + c] = float_to_half(out[c]);
        }
    });
}

}  // namespace

int64_t lift_chunks(const LiftView& w) { return (w.cols + w.d - 1) / w.d; }

void validate(const LiftView& w) {
    if (w.rows < 1 || w.cols < 1) bad("empty shape [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]");
    if (w.d < 1 || w.D <= w.d || w.D > 32)
        bad("D=" + std::to_string(w.D) + ", d=" + std::to_string(w.d) + " outside 1 <= d < D <= 32");
    const int64_t need = (w.rows * lift_chunks(w) * w.D + 7) / 8;
    if (!w.codes || w.code_bytes < need)
        bad("codes hold " + std::to_string(w.code_bytes) + " bytes, " + std::to_string(need) + " needed");
    if (!w.scales || !w.M) bad("scales or M pointer is null");
}

void lift_dequantize_f32(const LiftView& w, float* out, const CpuOptions& opt) { dequantize(w, out, nullptr, opt); }

void lift_dequantize_f16(const LiftView& w, uint16_t* out, const CpuOptions& opt) { dequantize(w, nullptr, out, opt); }

namespace detail {
namespace {

std::vector<float> lift_project(const LiftView& w, const float* x, int64_t batch, bool by_rows, int threads) {
    const std::vector<float> M = lift_matrix(w);
    // x' is held padded to whole chunks (zeros past cols), so a short last chunk projects like the others.
    const int64_t cols = w.cols, chunks = lift_chunks(w), plen = chunks * w.D, padded = chunks * w.d;
    const int64_t block = hadamard_block(cols);
    const float norm = w.signs ? hadamard_norm(block) : 1.f;
    std::vector<float> xt(batch * padded, 0.f), p(batch * plen);
    // x' = H (sign * x / act_scale): the transpose of what dequantization applies to the rows of W. Vectors
    // (and Hadamard blocks within one) are independent, so they are spread over the threads.
    const int64_t blocks = w.signs ? cols / block : 1, span = w.signs ? block : cols;
    parallel_rows(batch * blocks, threads, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t b = u / blocks, c0 = (u % blocks) * span;
            const float* xb = x + b * cols;
            float* t = xt.data() + b * padded;
            for (int64_t c = c0; c < c0 + span; ++c) {
                t[c] = w.act_scale ? xb[c] / half_to_float(w.act_scale[c]) : xb[c];
                if (w.signs && !((w.signs[c >> 3] >> (c & 7)) & 1u)) t[c] = -t[c];
            }
            if (w.signs) fwht_blocks(t + c0, span, block);
        }
    });
    // p[j][k] = sum_i M[i][k] x'[j d + i] / norm, chunks spread over the threads.
    parallel_rows(batch * chunks, threads, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t b = u / chunks, j = u % chunks;
            const float* xc = xt.data() + b * padded + j * w.d;
            float* pc = p.data() + b * plen + j * w.D;
            if (by_rows) {
                float acc[32] = {};
                for (int i = 0; i < w.d; ++i) {
                    const float* m = M.data() + static_cast<std::size_t>(i) * w.D;
                    for (int k = 0; k < w.D; ++k) acc[k] += m[k] * xc[i];
                }
                for (int k = 0; k < w.D; ++k) pc[k] = acc[k] / norm;
                continue;
            }
            for (int k = 0; k < w.D; ++k) {
                float acc = 0.f;
                for (int i = 0; i < w.d; ++i) acc += M[static_cast<std::size_t>(i) * w.D + k] * xc[i];
                pc[k] = acc / norm;
            }
        }
    });
    return p;
}

}  // namespace

void lift_gemv_via(const LiftView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt, bool by_rows,
                   const GridGemv& gemv) {
    validate(w);
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
    const std::vector<float> p = lift_project(w, x, batch, by_rows, opt.threads);
    gemv(lift_sign_grid(w), p.data(), y, batch, opt);
}

GridView lift_sign_grid(const LiftView& w) {
    GridView g;
    g.kind = GridKind::Binary;
    g.bits = 1;
    g.rows = w.rows;
    g.cols = g.group = lift_chunks(w) * w.D;
    g.codes = w.codes;
    g.code_bytes = w.code_bytes;
    g.scales = w.scales;
    return g;
}

}  // namespace detail

void lift_gemv(const LiftView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    detail::lift_gemv_via(w, x, y, batch, opt, false, grid_gemv);
}

void lift_gemv_int8(const LiftView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    detail::lift_gemv_via(w, x, y, batch, opt, true, [](const GridView& g, const float* p, float* yy, int64_t b,
                                                         const CpuOptions& o) { grid_gemv_int8(g, p, yy, b, o); });
}

}  // namespace quench::kernels
