// LC-QAT lattice on the CPU. Dequantization replays core's GEMMs as fused multiply-add chains (see the
// header); the GEMV is a projection of x, the unsigned 2-bit grid GEMV and a Hadamard over the outputs.
#include <immintrin.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_lattice.h"

namespace quench::kernels {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("lattice view: " + what); }

bool power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// The normalised Hadamard matrix core multiplies by: +-fp32(1 / fp32(sqrt(block))), Sylvester order.
std::vector<float> hadamard_matrix(int64_t block) {
    const float h = 1.0f / detail::hadamard_norm(block);
    std::vector<float> H(block * block);
    for (int64_t k = 0; k < block; ++k)
        for (int64_t c = 0; c < block; ++c) H[k * block + c] = (__builtin_popcountll(k & c) & 1) ? -h : h;
    return H;
}

// out[n][c] = sum_k in[n][k] H[k][c] within each block of each of the n rows: one fused chain per output,
// k ascending, as the BLAS kernel accumulates. in and out must not overlap.
void hadamard_gemm_scalar(const float* in, float* out, int64_t n, int64_t len, int64_t block, const float* H) {
    for (int64_t r = 0; r < n; ++r)
        for (int64_t b0 = 0; b0 < len; b0 += block) {
            const float* x = in + r * len + b0;
            float* y = out + r * len + b0;
            for (int64_t c = 0; c < block; ++c) {
                float acc = 0.f;
                for (int64_t k = 0; k < block; ++k) acc = std::fma(x[k], H[k * block + c], acc);
                y[c] = acc;
            }
        }
}

// The same chains, eight outputs per vector (each lane's chain is unchanged, so the result is identical).
__attribute__((target("avx2,fma"))) void hadamard_gemm_avx2(const float* in, float* out, int64_t n, int64_t len,
                                                          int64_t block, const float* H) {
    if (block % 8 != 0) return hadamard_gemm_scalar(in, out, n, len, block, H);
    for (int64_t r = 0; r < n; ++r)
        for (int64_t b0 = 0; b0 < len; b0 += block) {
            const float* x = in + r * len + b0;
            float* y = out + r * len + b0;
            for (int64_t c = 0; c < block; c += 8) {
                __m256 acc = _mm256_setzero_ps();
                for (int64_t k = 0; k < block; ++k)
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(x[k]), _mm256_loadu_ps(H + k * block + c), acc);
                _mm256_storeu_ps(y + c, acc);
            }
        }
}

struct Dequantizer {
    const LatticeView& w;
    bool avx2;
    std::vector<float> Hin, Hout;

    void gemm(const float* in, float* out, int64_t n, int64_t len, int64_t block, const std::vector<float>& H) const {
        if (avx2) hadamard_gemm_avx2(in, out, n, len, block, H.data());
        else hadamard_gemm_scalar(in, out, n, len, block, H.data());
    }

    // Rows [o0, o0 + ro) into out (fp32, or fp16 when f16).
    void rows(int64_t o0, int64_t ro, float* f32, uint16_t* f16) const {
        const int64_t cols = w.cols, n = ro * cols;
        std::vector<float> t(n), u(n);
        for (int64_t i = 0; i < ro; ++i)
            for (int64_t j = 0; j < cols / 4; ++j) {
                const uint32_t idx = w.codes[(o0 + i) * (cols / 4) + j];
                const float q[4] = {float(idx >> 6), float((idx >> 4) & 3), float((idx >> 2) & 3), float(idx & 3)};
                for (int m = 0; m < 4; ++m) {
                    float acc = 0.f;
                    for (int k = 0; k < 4; ++k) acc = std::fma(q[k], w.A[m * 4 + k], acc);
                    t[i * cols + 4 * j + m] = acc + w.b[m];
                }
            }
        if (w.had_in > 1) {
            gemm(t.data(), u.data(), ro, cols, w.had_in, Hin);
            t.swap(u);
        }
        if (w.had_out > 1) {
            // Over rows: transpose, transform each column as a row, transpose back.
            for (int64_t i = 0; i < ro; ++i)
                for (int64_t c = 0; c < cols; ++c) u[c * ro + i] = t[i * cols + c];
            std::vector<float> v(n);
            gemm(u.data(), v.data(), cols, ro, ro, Hout);
            for (int64_t i = 0; i < ro; ++i)
                for (int64_t c = 0; c < cols; ++c) t[i * cols + c] = v[c * ro + i];
        }
        for (int64_t i = 0; i < ro; ++i) {
            const float sv = half_to_float(w.sv[o0 + i]);
            for (int64_t c = 0; c < cols; ++c) {
                const float v = (sv * t[i * cols + c]) * half_to_float(w.su[c]);
                if (f32) f32[(o0 + i) * cols + c] = v;
                else f16[(o0 + i) * cols + c] = float_to_half(v);
            }
        }
    }
};

void dequantize(const LatticeView& w, float* f32, uint16_t* f16, const CpuOptions& opt) {
    validate(w);
    if (!f32 && !f16) bad("output pointer is null");
    Dequantizer dq{w, detail::use_avx2(opt), {}, {}};
    if (w.had_in > 1) dq.Hin = hadamard_matrix(w.had_in);
    if (w.had_out > 1) dq.Hout = hadamard_matrix(w.had_out);
    detail::parallel_rows(w.rows / w.had_out, opt.threads, [&](int64_t b0, int64_t b1) {
        for (int64_t rb = b0; rb < b1; ++rb) dq.rows(rb * w.had_out, w.had_out, f32, f16);
    });
}

}  // namespace

void validate(const LatticeView& w) {
    if (w.rows < 1 || w.cols < 1 || w.cols % 4 != 0)
        bad("shape [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] needs cols a positive multiple of 4");
    if (!power_of_two(w.had_in) || w.cols % w.had_in != 0)
        bad("had_in " + std::to_string(w.had_in) + " is not a power of two dividing cols " + std::to_string(w.cols));
    if (!power_of_two(w.had_out) || w.rows % w.had_out != 0)
        bad("had_out " + std::to_string(w.had_out) + " is not a power of two dividing rows " + std::to_string(w.rows));
    if (!w.codes || !w.A || !w.b || !w.su || !w.sv) bad("a part pointer (codes, A, b, su, sv) is null");
}

void lattice_dequantize_f32(const LatticeView& w, float* out, const CpuOptions& opt) { dequantize(w, out, nullptr, opt); }

void lattice_dequantize_f16(const LatticeView& w, uint16_t* out, const CpuOptions& opt) {
    dequantize(w, nullptr, out, opt);
}

namespace detail {

GridView lattice_code_grid(const LatticeView& w, const uint16_t* ones) {
    GridView g;
    g.kind = GridKind::Unsigned;
    g.bits = 2;
    g.rows = w.rows;
    g.cols = g.group = w.cols;
    g.codes = w.codes;
    g.code_bytes = w.rows * w.cols / 4;
    g.scales = ones;
    return g;
}

// x' = H_in (su * x) projected per chunk onto A^T, the 2-bit unsigned grid GEMV over it, then the constant
// b . x' and y = sv * (H_out z). Vectors and Hadamard blocks are independent: spread over the threads.
void lattice_gemv_via(const LatticeView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt,
                      const GridGemv& gemv) {
    validate(w);
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
    const int64_t rows = w.rows, cols = w.cols;
    std::vector<float> p(batch * cols), xt(batch * cols), consts(batch);
    // Units of whole Hadamard blocks and whole chunks of 4 (had_in and 4 are powers of two dividing cols).
    const int64_t span = std::max<int64_t>(w.had_in, 4), units = cols / span;
    parallel_rows(batch * units, opt.threads, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t bi = u / units, c0 = (u % units) * span;
            float* t = xt.data() + bi * cols + c0;
            for (int64_t c = 0; c < span; ++c) t[c] = x[bi * cols + c0 + c] * half_to_float(w.su[c0 + c]);
            if (w.had_in > 1) {
                fwht_blocks(t, span, w.had_in);
                const float norm = hadamard_norm(w.had_in);
                for (int64_t c = 0; c < span; ++c) t[c] /= norm;
            }
            // p in stream order: the byte's 2-bit codes come q3 first, so chunk j's slot t holds (A^T x'_j)[3 - t].
            for (int64_t j = c0 / 4; j < (c0 + span) / 4; ++j) {
                const float* xj = xt.data() + bi * cols + 4 * j;
                for (int i = 0; i < 4; ++i) {
                    float acc = 0.f;
                    for (int m = 0; m < 4; ++m) acc += w.A[m * 4 + i] * xj[m];
                    p[bi * cols + 4 * j + 3 - i] = acc;
                }
            }
        }
    });
    for (int64_t bi = 0; bi < batch; ++bi) {  // the constant in chunk order, as one double sum
        double c0 = 0;
        for (int64_t j = 0; j < cols / 4; ++j)
            for (int m = 0; m < 4; ++m) c0 += double(w.b[m]) * xt[bi * cols + 4 * j + m];
        consts[bi] = static_cast<float>(c0);
    }
    const std::vector<uint16_t> ones(rows, float_to_half(1.0f));
    gemv(lattice_code_grid(w, ones.data()), p.data(), y, batch, opt);
    const int64_t out_blocks = rows / w.had_out;
    parallel_rows(batch * out_blocks, opt.threads, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
            float* yb = y + (u / out_blocks) * rows + (u % out_blocks) * w.had_out;
            const uint16_t* sv = w.sv + (u % out_blocks) * w.had_out;
            const float c = consts[u / out_blocks];
            for (int64_t o = 0; o < w.had_out; ++o) yb[o] += c;
            float norm = 1.f;
            if (w.had_out > 1) {
                fwht_blocks(yb, w.had_out, w.had_out);
                norm = hadamard_norm(w.had_out);
            }
            for (int64_t o = 0; o < w.had_out; ++o) yb[o] = yb[o] / norm * half_to_float(sv[o]);
        }
    });
}

}  // namespace detail

void lattice_gemv(const LatticeView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    detail::lattice_gemv_via(w, x, y, batch, opt, grid_gemv);
}

void lattice_gemv_int8(const LatticeView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    detail::lattice_gemv_via(w, x, y, batch, opt, [](const GridView& g, const float* p, float* yy, int64_t b,
                                                     const CpuOptions& o) { grid_gemv_int8(g, p, yy, b, o); });
}

}  // namespace quench::kernels
