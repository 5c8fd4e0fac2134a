// LiftQuant's table-lookup int8 GEMV (see packed_lift_lut.h): the codes re-laid once, then per call the
// projection, int8 activation blocks in column order, each vector's tables, and the AVX2 lookup over tiles
// of 32 rows. Every fp32 step is the one packed_int8.cpp's paths take, as an explicit multiply or FMA.
#include <immintrin.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_grid.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_lift_lut.h"

namespace quench::kernels {
namespace {

constexpr int64_t kTile = 32;

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("lift lut: " + what); }

struct Shape {
    int64_t tiles, blocks, padded, pairs;  // blocks padded to a multiple of 4 as in packed_int8.cpp; pairs per block
    explicit Shape(const LiftLut& l)
        : tiles((l.rows + kTile - 1) / kTile), blocks((l.plen + l.block - 1) / l.block), padded((blocks + 3) / 4 * 4),
          pairs(l.block / 8) {}
    int64_t tile_bytes() const { return blocks * pairs * 32; }
    int64_t positions() const { return blocks * pairs * 2; }  // nibble positions per row, padding included
};

// Nibbles of row r (columns 4n..4n+3 for n < positions), zero past the row's end: 32 bits per stream read.
void row_nibbles(const LiftView& w, int64_t plen, int64_t r, std::vector<uint8_t>& nib) {
    for (int64_t n0 = 0; n0 < static_cast<int64_t>(nib.size()); n0 += 8) {
        const int64_t c0 = 4 * n0, left = plen - c0;
        uint64_t v = 0;
        if (left > 0) {
            const int64_t bit = r * plen + c0;
            v = (detail::load_u64(w.codes, w.code_bytes, bit >> 3) >> (bit & 7)) & 0xffffffffu;
            if (left < 32) v &= (uint64_t{1} << left) - 1;
        }
        for (int i = 0; i < 8 && n0 + i < static_cast<int64_t>(nib.size()); ++i) nib[n0 + i] = (v >> (4 * i)) & 0xfu;
    }
}

// Projected activations in int8 blocks of lut.block columns, column order: q [batch][blocks * block] (zero
// past plen), d [batch][padded] (zero for the padding blocks).
struct Acts {
    std::vector<int8_t> q;
    std::vector<float> d;
};

Acts quantize(const LiftLut& l, const Shape& s, const std::vector<float>& p, int64_t batch, int threads) {
    Acts a;
    const int64_t width = s.blocks * l.block;
    a.q.assign(batch * width, 0);
    a.d.assign(batch * s.padded, 0.f);
    detail::parallel_rows(batch * s.blocks, threads, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t b = u / s.blocks, k = u % s.blocks, c0 = k * l.block, n = std::min(l.block, l.plen - c0);
            const float* pb = p.data() + b * l.plen + c0;
            const detail::Int8Step st = detail::int8_step(pb, n);
            a.d[b * s.padded + k] = st.d;
            for (int64_t c = 0; c < n; ++c) a.q[b * width + c0 + c] = detail::int8_code(pb[c], st.id);
        }
    });
    return a;
}

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

// The tables of nibble positions n and n + 1 (activations q[0..7]) as one pair's 64 bytes: the low bytes of
// both positions' 16 int16 sums (lanes 0 and 1 of a register), then the high bytes.
QK_AVX2 void pair_tables(const int8_t* q, uint8_t* out) {
    // Lane c of pattern i: +1 when bit i of c is set, else -1.
    const __m256i pat[4] = {
        _mm256_setr_epi16(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1),
        _mm256_setr_epi16(-1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1),
        _mm256_setr_epi16(-1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1),
        _mm256_setr_epi16(-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1)};
    // Per lane: the entries' low bytes, then their high bytes.
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,  //
                                           0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    for (int h = 0; h < 2; ++h) {
        __m256i t = _mm256_setzero_si256();
        for (int i = 0; i < 4; ++i) t = _mm256_add_epi16(t, _mm256_sign_epi16(_mm256_set1_epi16(q[4 * h + i]), pat[i]));
        // [low bytes of c 0..7, high 0..7 | low 8..15, high 8..15] -> [low 0..15 | high 0..15]
        const __m256i lohi = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(t, split), 0xd8);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * h), _mm256_castsi256_si128(lohi));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32 + 16 * h), _mm256_extracti128_si256(lohi, 1));
    }
}

// Block sums of one tile's 32 rows for one vector: T for rows 0..7, 8..15, 16..23, 24..31 as fp32 (exact:
// |T| <= 128 * 127). Each lane of the int16 accumulators sums one position of every pair (|sum| <= 16 * 508).
QK_AVX2 inline __attribute__((always_inline)) void block_sums(const uint8_t* codes, const uint8_t* tables,
                                                              int64_t pairs, __m256 (&T)[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int64_t pp = 0; pp < pairs; ++pp) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32 * pp));
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables + 64 * pp));
        const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables + 64 * pp + 32));
        const __m256i i0 = _mm256_and_si256(v, m4), i1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        const __m256i l0 = _mm256_shuffle_epi8(lo, i0), h0 = _mm256_shuffle_epi8(hi, i0);
        const __m256i l1 = _mm256_shuffle_epi8(lo, i1), h1 = _mm256_shuffle_epi8(hi, i1);
        s[0] = _mm256_add_epi16(s[0], _mm256_unpacklo_epi8(l0, h0));
        s[1] = _mm256_add_epi16(s[1], _mm256_unpackhi_epi8(l0, h0));
        s[2] = _mm256_add_epi16(s[2], _mm256_unpacklo_epi8(l1, h1));
        s[3] = _mm256_add_epi16(s[3], _mm256_unpackhi_epi8(l1, h1));
    }
    for (int g = 0; g < 4; ++g) {
        const __m128i rows = _mm_add_epi16(_mm256_castsi256_si128(s[g]), _mm256_extracti128_si256(s[g], 1));
        T[g] = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(rows));
    }
}

// Tiles t0..t1: per block and vector, acc[k % 4] = fma(T, d * scale, acc[k % 4]) for eight rows at a time,
// then y = (acc0 + acc2) + (acc1 + acc3).
QK_AVX2 void tiles_avx2(const LiftLut& l, const Shape& s, const LiftView& w, const Acts& a,
                        const std::vector<uint8_t>& tables, int64_t batch, float* y, int64_t t0, int64_t t1) {
    const int64_t table_bytes = s.blocks * s.pairs * 64;
    alignas(32) float acc[8][4][kTile];
    alignas(32) float out[kTile];
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = t * kTile, nrows = std::min(kTile, l.rows - r0);
        const uint8_t* tile = l.bytes.data() + t * s.tile_bytes();
        alignas(32) float fs[kTile] = {};
        for (int64_t j = 0; j < nrows; ++j) fs[j] = _cvtsh_ss(w.scales[r0 + j]);
        __m256 f[4];
        for (int g = 0; g < 4; ++g) f[g] = _mm256_load_ps(fs + 8 * g);
        for (int64_t b = 0; b < batch; ++b)
            for (int i = 0; i < 4; ++i)
                for (int g = 0; g < 4; ++g) _mm256_store_ps(acc[b][i] + 8 * g, _mm256_setzero_ps());
        for (int64_t k = 0; k < s.padded; ++k)
            for (int64_t b = 0; b < batch; ++b) {
                __m256 T[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
                if (k < s.blocks)
                    block_sums(tile + k * s.pairs * 32, tables.data() + b * table_bytes + k * s.pairs * 64, s.pairs, T);
                const __m256 dk = _mm256_set1_ps(a.d[b * s.padded + k]);
                float* ak = acc[b][k % 4];
                for (int g = 0; g < 4; ++g)
                    _mm256_store_ps(ak + 8 * g, _mm256_fmadd_ps(T[g], _mm256_mul_ps(dk, f[g]), _mm256_load_ps(ak + 8 * g)));
            }
        for (int64_t b = 0; b < batch; ++b) {
            for (int g = 0; g < 4; ++g) {
                const auto at = [&](int i) QK_AVX2 { return _mm256_load_ps(acc[b][i] + 8 * g); };
                _mm256_store_ps(out + 8 * g, _mm256_add_ps(_mm256_add_ps(at(0), at(2)), _mm256_add_ps(at(1), at(3))));
            }
            std::copy(out, out + nrows, y + b * l.rows + r0);
        }
    }
}

}  // namespace

LiftLut lift_lut(const LiftView& w, const CpuOptions& opt) {
    validate(w);
    const GridView g = detail::lift_sign_grid(w);
    LiftLut l;
    l.rows = w.rows;
    l.plen = g.cols;
    l.block = int8_block_cols(g);
    const Shape s(l);
    l.bytes.assign(s.tiles * s.tile_bytes(), 0);
    detail::parallel_rows(s.tiles, opt.threads, [&](int64_t t0, int64_t t1) {
        std::vector<uint8_t> nib(s.positions());
        for (int64_t t = t0; t < t1; ++t) {
            uint8_t* tile = l.bytes.data() + t * s.tile_bytes();
            for (int64_t j = 0; j < kTile && t * kTile + j < l.rows; ++j) {
                row_nibbles(w, l.plen, t * kTile + j, nib);
                const int shift = j < 16 ? 0 : 4;
                for (int64_t n = 0; n < s.positions(); ++n)
                    tile[(n / 2) * 32 + (n % 2) * 16 + j % 16] |= static_cast<uint8_t>(nib[n] << shift);
            }
        }
    });
    return l;
}

void lift_gemv_int8(const LiftView& w, const LiftLut& lut, const float* x, float* y, int64_t batch,
                    const CpuOptions& opt) {
    validate(w);
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
    const GridView g = detail::lift_sign_grid(w);
    const Shape s(lut);
    if (lut.rows != w.rows || lut.plen != g.cols || lut.block != int8_block_cols(g) ||
        static_cast<int64_t>(lut.bytes.size()) != s.tiles * s.tile_bytes())
        bad("table layout for " + std::to_string(lut.rows) + " x " + std::to_string(lut.plen) + " signs does not fit a " +
            std::to_string(w.rows) + " x " + std::to_string(g.cols) + " view");
    if (!detail::use_avx2(opt)) return lift_gemv_int8(w, x, y, batch, opt);
    const std::vector<float> p = detail::lift_project(w, x, batch, true, opt.threads);
    const Acts a = quantize(lut, s, p, batch, opt.threads);
    // Tables: [batch][blocks * pairs][64 bytes], built in parallel.
    const int64_t pairs = s.blocks * s.pairs, width = s.blocks * lut.block;
    std::vector<uint8_t> tables(batch * pairs * 64);
    detail::parallel_rows(batch * pairs, opt.threads, [&](int64_t u0, int64_t u1) QK_AVX2 {
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t b = u / pairs, pp = u % pairs;
            pair_tables(a.q.data() + b * width + 8 * pp, tables.data() + u * 64);
        }
    });
    detail::parallel_rows(s.tiles, opt.threads, [&](int64_t t0, int64_t t1) {
        tiles_avx2(lut, s, w, a, tables, batch, y, t0, t1);
    });
}

}  // namespace quench::kernels
