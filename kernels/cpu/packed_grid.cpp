// Scalar-grid kernels on the CPU: a portable path and an AVX2 path (chosen at run time), both threaded
// over output rows. Codes are decoded eight at a time into fp32 lanes (shift by lane, mask, convert), so a
// weight is never stored wider than its code.
#include <immintrin.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_grid.h"

namespace quench::kernels {
namespace {

using detail::code_at;
using detail::load_u64;

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("grid view: " + what); }

int64_t packed_code_bytes(const GridView& w, int64_t n) {
    return w.kind == GridKind::Ternary ? (n + 4) / 5 : (n * w.bits + 7) / 8;
}

// Per-(row, group) parameters in the order core applies them.
struct GroupParams {
    const GridView& w;
    int64_t groups;
    float off0, mul;
    explicit GroupParams(const GridView& v)
        : w(v), groups(grid_groups(v)), off0(grid_level(v).offset), mul(grid_level(v).mul) {}
    // Columns of group g: w.group, or what is left for a short last one.
    int64_t width(int64_t g) const { return std::min(w.group, w.cols - g * w.group); }
    float scale(int64_t r, int64_t g) const { return half_to_float(w.scales[r * groups + g]); }
    float offset(int64_t r, int64_t g) const {
        return w.kind == GridKind::AsymInt ? static_cast<float>(code_at(w.zeros, w.zero_bytes, w.bits, r * groups + g))
                                           : off0;
    }
};

// ---- code streams: `at` for one code, `word8` for eight codes as an LSB-first bit field (AVX2 path) ----

struct BitStream {
    const uint8_t* p;
    int64_t n;
    int bits;
    uint32_t at(int64_t i) const { return code_at(p, n, bits, i); }
    uint64_t word8(int64_t i) const {  // 8 * bits <= 64 bits, plus a shift below 8: fits the 64-bit load
        const int64_t bit = i * bits;
        return load_u64(p, n, bit >> 3) >> (bit & 7);
    }
};

// Trits, re-expressed as 2-bit fields so the AVX2 decode of 2-bit codes applies.
struct TritStream {
    const uint8_t* p;
    int64_t n;
    uint32_t at(int64_t i) const { return detail::trit_at(p, i); }
    uint64_t word8(int64_t i) const {
        static const auto table = [] {  // byte -> its five trits as 2-bit fields
            struct T { uint16_t v[256]; } t{};
            for (int b = 0; b < 256; ++b)
                for (int k = 0, x = b; k < 5; ++k, x /= 3) t.v[b] |= static_cast<uint16_t>((x % 3) << (2 * k));
            return t;
        }();
        const int64_t byte = i / 5;
        const int k = static_cast<int>(i % 5);
        uint64_t w = 0;
        for (int j = 0; j < 4 && byte + j < n; ++j) w |= static_cast<uint64_t>(table.v[p[byte + j]]) << (10 * j);
        return w >> (2 * k);  // four bytes: at least 16 codes (32 bits) after the shift, as callers may use
    }
};

// ---- portable path ----

template <typename Stream>
void dequant_rows_scalar(const GridView& w, const Stream& st, int64_t r0, int64_t r1, float* f32, uint16_t* f16) {
    const GroupParams gp(w);
    for (int64_t r = r0; r < r1; ++r)
        for (int64_t g = 0; g < gp.groups; ++g) {
            const float s = gp.scale(r, g), off = gp.offset(r, g);
            const int64_t base = r * w.cols + g * w.group, width = gp.width(g);
            for (int64_t c = 0; c < width; ++c) {
                const float v = ((static_cast<float>(st.at(base + c)) - off) * gp.mul) * s;
                if (f32) f32[base + c] = v;
                else f16[base + c] = float_to_half(v);
            }
        }
}

template <typename Stream>
void gemv_rows_scalar(const GridView& w, const Stream& st, const float* x, float* y, int64_t batch, int64_t r0,
                      int64_t r1) {
    const GroupParams gp(w);
    float acc[8], sum[8];
    for (int64_t r = r0; r < r1; ++r) {
        for (int64_t b = 0; b < batch; ++b) sum[b] = 0.f;
        for (int64_t g = 0; g < gp.groups; ++g) {
            const float s = gp.scale(r, g) * gp.mul, off = gp.offset(r, g);
            const int64_t c0 = g * w.group, base = r * w.cols + c0, width = gp.width(g);
            for (int64_t b = 0; b < batch; ++b) acc[b] = 0.f;
            for (int64_t c = 0; c < width; ++c) {
                const float v = static_cast<float>(st.at(base + c)) - off;
                for (int64_t b = 0; b < batch; ++b) acc[b] += v * x[b * w.cols + c0 + c];
            }
            for (int64_t b = 0; b < batch; ++b) sum[b] += acc[b] * s;
        }
        for (int64_t b = 0; b < batch; ++b) y[b * w.rows + r] = sum[b];
    }
}

// ---- AVX2 path ----

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

// Eight B-bit codes from an LSB-first field into int32 lanes.
template <int B>
QK_AVX2 inline __m256i spread8(uint64_t field) {
    const __m256i mask = _mm256_set1_epi32((1 << B) - 1);
    if constexpr (B <= 4) {
        const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
        return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(field)), shifts), mask);
    } else {
        // Wider codes: the first four from the low 32 bits, the next four from bit 4B on.
        const auto lo = static_cast<int>(static_cast<uint32_t>(field));
        const auto hi = static_cast<int>(static_cast<uint32_t>(field >> (4 * B)));
        const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi32(lo)), _mm_set1_epi32(hi), 1);
        const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B);
        return _mm256_and_si256(_mm256_srlv_epi32(both, shifts), mask);
    }
}

// Codes of any row through the stream's bounds-checked reads. block(i): eight codes as int32 lanes;
// field(i): the same codes as one LSB-first field (widths up to 4), for the table decodes.
template <int B, typename Stream>
struct FieldDecoder {
    const Stream& st;
    QK_AVX2 __m256i block(int64_t i) const { return spread8<B>(st.word8(i)); }
    uint32_t field(int64_t i) const { return static_cast<uint32_t>(st.word8(i)); }
};

// Rows starting on a byte with groups of whole bytes: block i starts at byte i * B / 8, read directly.
// Only rows whose last block leaves 8 readable bytes use it (the loads may read past the block).
template <int B>
struct AlignedDecoder {
    const uint8_t* p;
    uint32_t field(int64_t i) const {
        uint32_t w;
        std::memcpy(&w, p + (i * B) / 8, 4);
        return w;
    }
    QK_AVX2 __m256i block(int64_t i) const {
        const uint8_t* q = p + (i * B) / 8;
        if constexpr (B == 8) {
            return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
        } else if constexpr (B <= 4) {
            uint32_t w;
            std::memcpy(&w, q, 4);
            return spread8<B>(w);
        } else {
            uint64_t w;
            std::memcpy(&w, q, 8);
            return spread8<B>(w);
        }
    }
};

QK_AVX2 inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Whether row r can use AlignedDecoder.
bool row_aligned(const GridView& w, int bits, int64_t r) {
    if (w.kind == GridKind::Ternary || w.group % 8 != 0 || (r * w.cols * bits) % 8 != 0) return false;
    return ((r + 1) * w.cols * bits) / 8 + 8 <= w.code_bytes;
}

template <typename Decoder, typename Stream>
QK_AVX2 void dequant_row_avx2(const GridView& w, const GroupParams& gp, const Decoder& dec, const Stream& st,
                              int64_t r, float* f32, uint16_t* f16) {
    const __m256 vmul = _mm256_set1_ps(gp.mul);
    for (int64_t g = 0; g < gp.groups; ++g) {
        const float s = _cvtsh_ss(w.scales[r * gp.groups + g]), off = gp.offset(r, g);
        const __m256 vs = _mm256_set1_ps(s), voff = _mm256_set1_ps(off);
        const int64_t base = r * w.cols + g * w.group, width = gp.width(g), vec = width & ~int64_t(7);
        for (int64_t c = 0; c < vec; c += 8) {
            // Core's operations in core's order: (c - off) * mul is exact, * s rounds once.
            const __m256 q = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(dec.block(base + c)), voff), vmul);
            const __m256 v = _mm256_mul_ps(q, vs);
            if (f32) _mm256_storeu_ps(f32 + base + c, v);
            else _mm_storeu_si128(reinterpret_cast<__m128i*>(f16 + base + c),
                                  _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        }
        for (int64_t c = vec; c < width; ++c) {
            const float v = ((static_cast<float>(st.at(base + c)) - off) * gp.mul) * s;
            if (f32) f32[base + c] = v;
            else f16[base + c] = float_to_half(v);
        }
    }
}

// Scale * mul and offset * scale * mul of groups [g0, g0 + n) of row r (n <= 64), eight at a time: with
// small groups the per-group scalar work would otherwise cost as much as the codes.
template <int B>
QK_AVX2 void group_params_avx2(const GridView& w, const GroupParams& gp, int64_t r, int64_t g0, int64_t n, float* s,
                               float* os) {
    const int64_t first = r * gp.groups + g0;
    const __m256 vmul = _mm256_set1_ps(gp.mul);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 sc = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales + first + k))), vmul);
        __m256 off = _mm256_set1_ps(gp.off0);
        if (w.kind == GridKind::AsymInt) {
            const int64_t bit = (first + k) * B;
            off = _mm256_cvtepi32_ps(spread8<B>(load_u64(w.zeros, w.zero_bytes, bit >> 3) >> (bit & 7)));
        }
        _mm256_storeu_ps(s + k, sc);
        _mm256_storeu_ps(os + k, _mm256_mul_ps(off, sc));
    }
    for (; k < n; ++k) {
        s[k] = _cvtsh_ss(w.scales[first + k]) * gp.mul;
        os[k] = gp.offset(r, g0 + k) * s[k];
    }
}

// Turns blocks of eight codes into eight fp32 weights of one group. Widths 1 to 3 look the weights up in
// a per-group table of level * scale (a blend on the code bit, an in-lane or a cross-lane permute that
// reads only the low index bits, so no masking or conversion); wider codes convert and scale with one
// fused op, c * s - off * s.
template <int B>
struct GroupWeights {
    __m256 a, b;
    QK_AVX2 void set(float s, float os) {  // s = scale * mul, os = offset * s
        if constexpr (B == 1) {
            a = _mm256_set1_ps(-os), b = _mm256_set1_ps(s - os);
        } else if constexpr (B == 2) {
            a = _mm256_fmsub_ps(_mm256_setr_ps(0, 1, 2, 3, 0, 1, 2, 3), _mm256_set1_ps(s), _mm256_set1_ps(os));
        } else if constexpr (B == 3) {
            a = _mm256_fmsub_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps(s), _mm256_set1_ps(os));
        } else {
            a = _mm256_set1_ps(s), b = _mm256_set1_ps(os);
        }
    }
    // Block k of a broadcast 32-bit field holding 32 / B codes (B = 1 or 2): one load serves 4 / B blocks.
    QK_AVX2 __m256 weights_of_word(__m256i word, int k) const {
        if constexpr (B == 1) {
            const __m256i m = _mm256_sllv_epi32(
                word, _mm256_sub_epi32(_mm256_set1_epi32(31 - 8 * k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
            return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m));
        } else {
            const __m256i idx = _mm256_srlv_epi32(
                word, _mm256_add_epi32(_mm256_set1_epi32(16 * k), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)));
            return _mm256_permutevar_ps(a, idx);
        }
    }
    template <typename Decoder>
    QK_AVX2 __m256 weights(const Decoder& dec, int64_t i) const {
        if constexpr (B == 1) {  // bit k of the field moved to the sign bit of lane k selects b over a
            const __m256i m = _mm256_sllv_epi32(_mm256_set1_epi32(static_cast<int>(dec.field(i))),
                                                _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24));
            return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m));
        } else if constexpr (B <= 3) {
            const __m256i idx = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(dec.field(i))),
                                                  _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B));
            if constexpr (B == 2) return _mm256_permutevar_ps(a, idx);
            else return _mm256_permutevar8x32_ps(a, idx);
        } else {
            return _mm256_fmsub_ps(_mm256_cvtepi32_ps(dec.block(i)), a, b);
        }
    }
};

// One row for NB vectors. The accumulators run through the whole row (weights carry their group's scale);
// with few vectors U independent accumulators per vector hide the FMA latency.
template <int NB, int B, typename Decoder, typename Stream>
QK_AVX2 void gemv_row_avx2(const GridView& w, const GroupParams& gp, const Decoder& dec, const Stream& st,
                           const float* x, float* y, int64_t r) {
    constexpr int U = NB <= 2 ? 4 : NB <= 4 ? 2 : 1;
    constexpr int64_t kChunk = 64;
    const int64_t cols = w.cols;
    __m256 acc[U][NB];
    for (int u = 0; u < U; ++u)
        for (int b = 0; b < NB; ++b) acc[u][b] = _mm256_setzero_ps();
    float tail[NB] = {};
    float sc[kChunk], os[kChunk];
    GroupWeights<B> gw;
    int u = 0;
    for (int64_t g0 = 0; g0 < gp.groups; g0 += kChunk) {
        const int64_t n = std::min(kChunk, gp.groups - g0);
        group_params_avx2<B>(w, gp, r, g0, n, sc, os);
        for (int64_t gi = 0; gi < n; ++gi) {
            gw.set(sc[gi], os[gi]);
            const int64_t c0 = (g0 + gi) * w.group, base = r * cols + c0;
            const int64_t G = gp.width(g0 + gi), vec = G & ~int64_t(7);
            const float* xg = x + c0;
            int64_t c = 0;
            for (; c + 8 * U <= vec; c += 8 * U) {
                // 1- and 2-bit codes: one 32-bit field feeds 4 / B blocks (the field holds at least 32 bits).
                constexpr int kPerWord = B <= 2 && U % (4 / B) == 0 ? 4 / B : 1;
                __m256i word = _mm256_setzero_si256();
                for (int k = 0; k < U; ++k) {
                    __m256 v;
                    if constexpr (kPerWord > 1) {
                        if (k % kPerWord == 0)
                            word = _mm256_set1_epi32(static_cast<int>(dec.field(base + c + 8 * k)));
                        v = gw.weights_of_word(word, k % kPerWord);
                    } else {
                        v = gw.weights(dec, base + c + 8 * k);
                    }
                    for (int b = 0; b < NB; ++b)
                        acc[k][b] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xg + b * cols + c + 8 * k), acc[k][b]);
                }
            }
            for (; c < vec; c += 8, u = (u + 1) % U) {
                const __m256 v = gw.weights(dec, base + c);
                for (int b = 0; b < NB; ++b)
                    acc[u][b] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xg + b * cols + c), acc[u][b]);
            }
            for (; c < G; ++c) {
                const float v = static_cast<float>(st.at(base + c)) * sc[gi] - os[gi];
                for (int b = 0; b < NB; ++b) tail[b] += v * xg[b * cols + c];
            }
        }
    }
    for (int b = 0; b < NB; ++b) {
        __m256 a = acc[0][b];
        for (int k = 1; k < U; ++k) a = _mm256_add_ps(a, acc[k][b]);
        y[b * w.rows + r] = hsum(a) + tail[b];
    }
}

// Rows [r0, r1) through the aligned decoder where it applies, the bounds-checked one elsewhere.
template <int B, typename Stream, typename RowFn>
QK_AVX2 void rows_avx2(const GridView& w, const Stream& st, int64_t r0, int64_t r1, RowFn&& row) {
    const FieldDecoder<B, Stream> field{st};
    const AlignedDecoder<B> aligned{w.codes};
    for (int64_t r = r0; r < r1; ++r) {
        if (row_aligned(w, B, r)) row(aligned, r);
        else row(field, r);
    }
}

template <int NB, int B, typename Stream>
QK_AVX2 void gemv_rows_avx2(const GridView& w, const Stream& st, const float* x, float* y, int64_t r0, int64_t r1) {
    const GroupParams gp(w);
    rows_avx2<B>(w, st, r0, r1, [&](const auto& dec, int64_t r) { gemv_row_avx2<NB, B>(w, gp, dec, st, x, y, r); });
}

template <int B, typename Stream>
void gemv_rows_avx2_batch(const GridView& w, const Stream& st, const float* x, float* y, int64_t batch, int64_t r0,
                          int64_t r1) {
    switch (batch) {
        case 1: return gemv_rows_avx2<1, B>(w, st, x, y, r0, r1);
        case 2: return gemv_rows_avx2<2, B>(w, st, x, y, r0, r1);
        case 3: return gemv_rows_avx2<3, B>(w, st, x, y, r0, r1);
        case 4: return gemv_rows_avx2<4, B>(w, st, x, y, r0, r1);
        case 5: return gemv_rows_avx2<5, B>(w, st, x, y, r0, r1);
        case 6: return gemv_rows_avx2<6, B>(w, st, x, y, r0, r1);
        case 7: return gemv_rows_avx2<7, B>(w, st, x, y, r0, r1);
        default: return gemv_rows_avx2<8, B>(w, st, x, y, r0, r1);
    }
}

template <int B, typename Stream>
QK_AVX2 void dequant_rows_avx2(const GridView& w, const Stream& st, int64_t r0, int64_t r1, float* f32, uint16_t* f16) {
    const GroupParams gp(w);
    rows_avx2<B>(w, st, r0, r1, [&](const auto& dec, int64_t r) { dequant_row_avx2(w, gp, dec, st, r, f32, f16); });
}

// Calls f(stream, integral_constant<B>) with the view's code stream and its compile-time width; trits are
// decoded as 2-bit fields.
template <typename F>
void with_width(const GridView& w, F&& f) {
    if (w.kind == GridKind::Ternary) return f(TritStream{w.codes, w.code_bytes}, std::integral_constant<int, 2>{});
    const BitStream st{w.codes, w.code_bytes, w.bits};
    switch (w.bits) {
        case 1: return f(st, std::integral_constant<int, 1>{});
        case 2: return f(st, std::integral_constant<int, 2>{});
        case 3: return f(st, std::integral_constant<int, 3>{});
        case 4: return f(st, std::integral_constant<int, 4>{});
        case 5: return f(st, std::integral_constant<int, 5>{});
        case 6: return f(st, std::integral_constant<int, 6>{});
        case 7: return f(st, std::integral_constant<int, 7>{});
        default: return f(st, std::integral_constant<int, 8>{});
    }
}

void dequantize(const GridView& w, float* f32, uint16_t* f16, const CpuOptions& opt) {
    validate(w);
    if (!f32 && !f16) bad("output pointer is null");
    const bool avx2 = detail::use_avx2(opt);
    with_width(w, [&](const auto& st, auto width) {
        detail::parallel_rows(w.rows, opt.threads, [&](int64_t r0, int64_t r1) {
            if (avx2) dequant_rows_avx2<decltype(width)::value>(w, st, r0, r1, f32, f16);
            else dequant_rows_scalar(w, st, r0, r1, f32, f16);
        });
    });
}

}  // namespace

int64_t grid_groups(const GridView& w) { return (w.cols + w.group - 1) / w.group; }

GridLevel grid_level(const GridView& w) {
    switch (w.kind) {
        case GridKind::SymInt: return {static_cast<float>(1 << (w.bits - 1)), 1.0f};
        case GridKind::Binary: return {0.5f, 2.0f};
        case GridKind::Ternary: return {1.0f, static_cast<float>(2.0 / 3.0)};  // core's level: a double rounded once
        case GridKind::Seq: return {1.5f, 0.5f};
        default: return {0.0f, 1.0f};
    }
}

void validate(const GridView& w) {
    if (w.rows < 1 || w.cols < 1) bad("empty shape [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "]");
    if (w.group < 1 || w.group > w.cols)
        bad("group " + std::to_string(w.group) + " is outside 1..cols " + std::to_string(w.cols));
    const int b = w.bits;
    bool bits_ok = false;
    switch (w.kind) {
        case GridKind::AsymInt:
        case GridKind::SymInt: bits_ok = b >= 2 && b <= 8; break;
        case GridKind::Unsigned: bits_ok = b >= 1 && b <= 8; break;
        case GridKind::Binary: bits_ok = b == 1; break;
        case GridKind::Ternary: bits_ok = b == 0; break;
        case GridKind::Seq: bits_ok = b == 2; break;
        default: bad("unknown grid kind " + std::to_string(static_cast<int>(w.kind)));
    }
    if (!bits_ok) bad("bits=" + std::to_string(b) + " does not fit the grid kind " + std::to_string(static_cast<int>(w.kind)));
    if (!w.codes || w.code_bytes < packed_code_bytes(w, w.rows * w.cols))
        bad("codes hold " + std::to_string(w.code_bytes) + " bytes, " +
            std::to_string(packed_code_bytes(w, w.rows * w.cols)) + " needed");
    if (!w.scales) bad("scales pointer is null");
    const int64_t params = w.rows * grid_groups(w);
    if (w.kind == GridKind::AsymInt) {
        if (!w.zeros || w.zero_bytes < (params * b + 7) / 8)
            bad("zeros hold " + std::to_string(w.zero_bytes) + " bytes, " + std::to_string((params * b + 7) / 8) +
                " needed");
    } else if (w.zeros) {
        bad("zeros given for a grid without a zero point");
    }
}

void grid_dequantize_f32(const GridView& w, float* out, const CpuOptions& opt) { dequantize(w, out, nullptr, opt); }

void grid_dequantize_f16(const GridView& w, uint16_t* out, const CpuOptions& opt) { dequantize(w, nullptr, out, opt); }

void grid_gemv(const GridView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    validate(w);
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
    const bool avx2 = detail::use_avx2(opt);
    with_width(w, [&](const auto& st, auto width) {
        detail::parallel_rows(w.rows, opt.threads, [&](int64_t r0, int64_t r1) {
            if (avx2) gemv_rows_avx2_batch<decltype(width)::value>(w, st, x, y, batch, r0, r1);
            else gemv_rows_scalar(w, st, x, y, batch, r0, r1);
        });
    });
}

}  // namespace quench::kernels
