// QAM-W (joint codebook) on the CPU: row-by-row dequantization in core's order, and a GEMV that looks up
// each pair's codebook point against the transformed input (see the header).
#include <immintrin.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_qamw.h"

namespace quench::kernels {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("qamw view: " + what); }

std::vector<float> codebook_f32(const QamwView& w) {
    std::vector<float> cb(std::size_t(2) << w.k);
    for (std::size_t i = 0; i < cb.size(); ++i) cb[i] = half_to_float(w.codebook[i]);
    return cb;
}

void dequant_row(const QamwView& w, const std::vector<float>& cb, int64_t r, float* out) {
    const int64_t pairs = w.cols / 2;
    const float sq = detail::hadamard_norm(w.cols);  // fp32(sqrt(cols)), the same rounding
    for (int64_t t = 0; t < pairs; ++t) {
        const uint32_t code = detail::code_at(w.codes, w.code_bytes, w.k, r * pairs + t);
        out[2 * t] = cb[2 * code] / sq;
        out[2 * t + 1] = cb[2 * code + 1] / sq;
    }
    detail::fwht_blocks(out, w.cols, w.block);
    const float hn = detail::hadamard_norm(w.block), norm = half_to_float(w.norms[r]);
    for (int64_t c = 0; c < w.cols; ++c) {
        float v = out[c] / hn;
        if (w.signs) v = v * qamw_sign(w.sign_seed, c);
        v = v * norm;
        if (w.act_scale) v = v / half_to_float(w.act_scale[c]);
        out[c] = v;
    }
}

void dequantize(const QamwView& w, float* f32, uint16_t* f16, const CpuOptions& opt) {
    validate(w);
    if (!f32 && !f16) bad("output pointer is null");
    const std::vector<float> cb = codebook_f32(w);
    detail::parallel_rows(w.rows, opt.threads, [&](int64_t r0, int64_t r1) {
        std::vector<float> row(f16 ? w.cols : 0);
        for (int64_t r = r0; r < r1; ++r) {
            float* out = f16 ? row.data() : f32 + r * w.cols;
            dequant_row(w, cb, r, out);
            if (f16)
                for (int64_t c = 0; c < w.cols; ++c) f16[r * w.cols + c] = float_to_half(out[c]);
        }
    });
}

void gemv_rows_scalar(const QamwView& w, const float* cb, const float* xt, float* y, int64_t batch, int64_t r0,
                      int64_t r1) {
    const int64_t pairs = w.cols / 2;
    for (int64_t r = r0; r < r1; ++r) {
        float acc[8] = {};
        for (int64_t t = 0; t < pairs; ++t) {
            const float* p = cb + 2 * detail::code_at(w.codes, w.code_bytes, w.k, r * pairs + t);
            for (int64_t b = 0; b < batch; ++b) acc[b] += p[0] * xt[b * w.cols + 2 * t] + p[1] * xt[b * w.cols + 2 * t + 1];
        }
        const float norm = half_to_float(w.norms[r]);
        for (int64_t b = 0; b < batch; ++b) y[b * w.rows + r] = acc[b] * norm;
    }
}

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

QK_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Four pairs per step: their codes from one 64-bit field (k <= 14), the four points gathered as 64-bit
// (x, y) words, which line up with the interleaved input pairs.
template <int NB>
QK_AVX2 void gemv_rows_avx2(const QamwView& w, const float* cb, const float* xt, float* y, int64_t r0, int64_t r1) {
    constexpr int U = NB <= 2 ? 4 : NB <= 4 ? 2 : 1;
    const int64_t pairs = w.cols / 2, vec = pairs & ~int64_t(3), cols = w.cols;
    const int k = w.k;
    const __m256i shifts = _mm256_setr_epi64x(0, k, 2 * k, 3 * k), mask = _mm256_set1_epi64x((1ll << k) - 1);
    const auto* table = reinterpret_cast<const long long*>(cb);
    for (int64_t r = r0; r < r1; ++r) {
        __m256 acc[U][NB];
        for (int u = 0; u < U; ++u)
            for (int b = 0; b < NB; ++b) acc[u][b] = _mm256_setzero_ps();
        float tail[NB] = {};
        int u = 0;
        for (int64_t t = 0; t < vec; t += 4, u = (u + 1) % U) {
            const int64_t bit = (r * pairs + t) * k;
            const uint64_t field = detail::load_u64(w.codes, w.code_bytes, bit >> 3) >> (bit & 7);
            const __m256i idx = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(static_cast<long long>(field)), shifts), mask);
            const __m256 pts = _mm256_castsi256_ps(_mm256_i64gather_epi64(table, idx, 8));
            for (int b = 0; b < NB; ++b) acc[u][b] = _mm256_fmadd_ps(pts, _mm256_loadu_ps(xt + b * cols + 2 * t), acc[u][b]);
        }
        for (int64_t t = vec; t < pairs; ++t) {
            const float* p = cb + 2 * detail::code_at(w.codes, w.code_bytes, k, r * pairs + t);
            for (int b = 0; b < NB; ++b) tail[b] += p[0] * xt[b * cols + 2 * t] + p[1] * xt[b * cols + 2 * t + 1];
        }
        const float norm = _cvtsh_ss(w.norms[r]);
        for (int b = 0; b < NB; ++b) {
            __m256 a = acc[0][b];
            for (int j = 1; j < U; ++j) a = _mm256_add_ps(a, acc[j][b]);
            y[b * w.rows + r] = (hsum(a) + tail[b]) * norm;
        }
    }
}

void gemv_rows_avx2_batch(const QamwView& w, const float* cb, const float* xt, float* y, int64_t batch, int64_t r0,
                          int64_t r1) {
    switch (batch) {
        case 1: return gemv_rows_avx2<1>(w, cb, xt, y, r0, r1);
        case 2: return gemv_rows_avx2<2>(w, cb, xt, y, r0, r1);
        case 3: return gemv_rows_avx2<3>(w, cb, xt, y, r0, r1);
        case 4: return gemv_rows_avx2<4>(w, cb, xt, y, r0, r1);
        case 5: return gemv_rows_avx2<5>(w, cb, xt, y, r0, r1);
        case 6: return gemv_rows_avx2<6>(w, cb, xt, y, r0, r1);
        case 7: return gemv_rows_avx2<7>(w, cb, xt, y, r0, r1);
        default: return gemv_rows_avx2<8>(w, cb, xt, y, r0, r1);
    }
}

}  // namespace

void validate(const QamwView& w) {
    if (w.rows < 1 || w.cols < 2 || w.cols % 2 != 0)
        bad("shape [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] needs an even, positive cols");
    if (w.block < 1 || (w.block & (w.block - 1)) != 0 || w.cols % w.block != 0)
        bad("block " + std::to_string(w.block) + " is not a power of two dividing cols " + std::to_string(w.cols));
    if (w.k < 2 || w.k > 16) bad("k=" + std::to_string(w.k) + " is outside 2..16");
    const int64_t need = (w.rows * (w.cols / 2) * w.k + 7) / 8;
    if (!w.codes || w.code_bytes < need)
        bad("codes hold " + std::to_string(w.code_bytes) + " bytes, " + std::to_string(need) + " needed");
    if (!w.norms || !w.codebook) bad("norms or codebook pointer is null");
}

void qamw_dequantize_f32(const QamwView& w, float* out, const CpuOptions& opt) { dequantize(w, out, nullptr, opt); }

void qamw_dequantize_f16(const QamwView& w, uint16_t* out, const CpuOptions& opt) { dequantize(w, nullptr, out, opt); }

void qamw_gemv(const QamwView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    validate(w);
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
    const std::vector<float> cb = codebook_f32(w);
    const int64_t cols = w.cols;
    std::vector<float> xt(batch * cols);
    const float scale = 1.0f / (detail::hadamard_norm(w.block) * detail::hadamard_norm(cols));
    for (int64_t b = 0; b < batch; ++b) {
        float* v = xt.data() + b * cols;
        for (int64_t c = 0; c < cols; ++c) {
            float e = x[b * cols + c];
            if (w.act_scale) e /= half_to_float(w.act_scale[c]);
            v[c] = w.signs ? e * qamw_sign(w.sign_seed, c) : e;
        }
        detail::fwht_blocks(v, cols, w.block);
        for (int64_t c = 0; c < cols; ++c) v[c] *= scale;
    }
    const bool avx2 = detail::use_avx2(opt) && w.k <= 14;
    detail::parallel_rows(w.rows, opt.threads, [&](int64_t r0, int64_t r1) {
        if (avx2) gemv_rows_avx2_batch(w, cb.data(), xt.data(), y, batch, r0, r1);
        else gemv_rows_scalar(w, cb.data(), xt.data(), y, batch, r0, r1);
    });
}

}  // namespace quench::kernels
