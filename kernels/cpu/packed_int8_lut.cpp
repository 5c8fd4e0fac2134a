// The table-lookup int8 GEMV (see packed_int8_lut.h): codes re-laid once per weight; per call the int8
// activation blocks in column order, each vector's tables, and the AVX2 lookup over tiles of 32 rows. Every
// fp32 step is the one packed_int8.cpp's paths take, as an explicit multiply, FMA or add.
#include <immintrin.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_int8_lut.h"

namespace quench::kernels {
namespace {

constexpr int64_t kTile = 32;

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("int8 lookup table: " + what); }

// Blocks as packed_int8.cpp's BlockPlan cuts them (padded to a multiple of 4 for its four accumulators).
struct Plan {
    int bits;
    int64_t tiles, groups, per_group, blocks, padded, pairs;  // pairs of nibble positions per block
    explicit Plan(const Int8Lut& l)
        : bits(l.bits), tiles((l.rows + kTile - 1) / kTile), groups((l.cols + l.group - 1) / l.group),
          per_group((l.group + l.block - 1) / l.block), blocks(groups * per_group), padded((blocks + 3) / 4 * 4),
          pairs(l.block / 8) {}
    int64_t block_bytes() const { return bits * pairs * 32; }
    int64_t tile_bytes() const { return blocks * block_bytes(); }
    int64_t col0(const Int8Lut& l, int64_t k) const { return (k / per_group) * l.group + (k % per_group) * l.block; }
    // Columns of block k: empty past a short last group's width, as BlockPlan has them.
    int64_t width(const Int8Lut& l, int64_t k) const {
        const int64_t g = k / per_group, group_width = std::min(l.group, l.cols - g * l.group);
        return std::max<int64_t>(0, std::min(l.block, group_width - (k % per_group) * l.block));
    }
};

// Codes of row r, one per byte: 32 bits of the stream per read.
void row_codes(const GridView& w, int64_t r, std::vector<uint8_t>& u) {
    const int B = w.bits, per = 32 / B;
    const uint32_t mask = (1u << B) - 1u;
    for (int64_t c0 = 0; c0 < w.cols; c0 += per) {
        const int64_t bit = (r * w.cols + c0) * B;
        const uint64_t v = detail::load_u64(w.codes, w.code_bytes, bit >> 3) >> (bit & 7);
        for (int i = 0; i < per && c0 + i < w.cols; ++i) u[c0 + i] = static_cast<uint8_t>((v >> (B * i)) & mask);
    }
}

void check(const GridView& w, const Int8Lut& l) {
    bool fits = l.kind == w.kind && l.bits == w.bits && l.rows == w.rows && l.cols == w.cols && l.group == w.group &&
                l.block == int8_block_cols(w);
    if (fits) {  // the shape is the view's (validated): the sizes it implies can be computed
        const Plan s(l);
        fits = static_cast<int64_t>(l.codes.size()) == s.tiles * s.tile_bytes() &&
               static_cast<int64_t>(l.scales.size()) == s.tiles * s.groups * kTile &&
               static_cast<int64_t>(l.zeros.size()) == (w.kind == GridKind::AsymInt ? s.tiles * s.groups * kTile : 0);
    }
    if (!fits)
        bad("made for " + std::to_string(l.rows) + " x " + std::to_string(l.cols) + " codes of " + std::to_string(l.bits) +
            " bits in groups of " + std::to_string(l.group) + ", not this " + std::to_string(w.rows) + " x " +
            std::to_string(w.cols) + " view of " + std::to_string(w.bits) + " bits in groups of " + std::to_string(w.group));
}

// Activations in int8 blocks, column order within a block: q [batch][blocks * block] (zero past a block's
// width), d and X = sum q [batch][padded] (zero for the padding blocks).
struct Acts {
    std::vector<int8_t> q;
    std::vector<float> d;
    std::vector<int32_t> X;
};

Acts quantize(const Int8Lut& l, const Plan& s, const float* x, int64_t batch, int threads) {
    Acts a;
    const int64_t width = s.blocks * l.block;
    a.q.assign(batch * width, 0);
    a.d.assign(batch * s.padded, 0.f);
    a.X.assign(batch * s.padded, 0);
    detail::parallel_rows(batch * s.blocks, threads, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
            const int64_t b = u / s.blocks, k = u % s.blocks, n = s.width(l, k);
            const float* xb = x + b * l.cols + s.col0(l, k);
            const detail::Int8Step st = detail::int8_step(xb, n);
            int8_t* q = a.q.data() + b * width + k * l.block;
            int32_t sum = 0;
            for (int64_t c = 0; c < n; ++c) sum += q[c] = detail::int8_code(xb[c], st.id);
            a.d[b * s.padded + k] = st.d;
            a.X[b * s.padded + k] = sum;
        }
    });
    return a;
}

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

// The tables of nibble positions n and n + 1 (activations q[0..7]) as one pair's 64 bytes: the low bytes of
// both positions' 16 int16 sums (lanes 0 and 1 of a register), then the high bytes.
QK_AVX2 void pair_tables(const int8_t* q, uint8_t* out) {
    // Lane c of pattern i: 1 when bit i of c is set, else 0 (_mm256_sign_epi16 then keeps q or gives 0).
    const __m256i pat[4] = {_mm256_setr_epi16(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
                            _mm256_setr_epi16(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1),
                            _mm256_setr_epi16(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1),
                            _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)};
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

// One bit plane's block dots for a tile's 32 rows and one vector, as int32 for rows 0..7, 8..15, 16..23 and
// 24..31. Each lane of the int16 accumulators sums one position of every pair (|sum| <= 16 * 508).
QK_AVX2 inline __attribute__((always_inline)) void plane_sums(const uint8_t* codes, const uint8_t* tables,
                                                              int64_t pairs, __m256i (&D)[4]) {
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
    for (int g = 0; g < 4; ++g)
        D[g] = _mm256_cvtepi16_epi32(_mm_add_epi16(_mm256_castsi256_si128(s[g]), _mm256_extracti128_si256(s[g], 1)));
}

// Tiles t0..t1. Per block and vector: D = sum_p 2^p (plane p's dots), T = a D - o X, and for eight rows at a
// time acc[k % 4] = fma(T, d * (scale * m), acc[k % 4]); then y = (acc0 + acc2) + (acc1 + acc3).
QK_AVX2 void tiles_avx2(const Int8Lut& l, const Plan& s, const Acts& a, const std::vector<uint8_t>& tables,
                        int64_t batch, float* y, int64_t t0, int64_t t1) {
    GridView kind;
    kind.kind = l.kind, kind.bits = l.bits;
    const detail::IntLevel lv = detail::int_level(kind);
    const int64_t table_bytes = s.blocks * s.pairs * 64;
    const bool asym = !l.zeros.empty();
    alignas(32) float acc[8][4][kTile];
    alignas(32) float out[kTile];
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t r0 = t * kTile, nrows = std::min(kTile, l.rows - r0);
        const uint8_t* tile = l.codes.data() + t * s.tile_bytes();
        for (int64_t b = 0; b < batch; ++b)
            for (int i = 0; i < 4; ++i)
                for (int g = 0; g < 4; ++g) _mm256_store_ps(acc[b][i] + 8 * g, _mm256_setzero_ps());
        // Set at the first block of each group (block 0 starts one); initialized only as the compiler cannot tell.
        __m256 f[4] = {};
        __m256i o[4] = {};
        for (int64_t k = 0; k < s.padded; ++k) {
            if (k >= s.blocks) {  // padding: T = 0, d = 0, f = 0, as the other paths add it
                for (int64_t b = 0; b < batch; ++b)
                    for (int g = 0; g < 4; ++g) {
                        float* ak = acc[b][k % 4] + 8 * g;
                        _mm256_store_ps(ak, _mm256_fmadd_ps(_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_load_ps(ak)));
                    }
                continue;
            }
            if (k % s.per_group == 0) {  // a new group: its scales (and zero codes) for the tile's rows
                const int64_t at = (t * s.groups + k / s.per_group) * kTile;
                for (int g = 0; g < 4; ++g) {
                    f[g] = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(l.scales.data() + at + 8 * g))),
                                         _mm256_set1_ps(lv.m));
                    o[g] = asym ? _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(l.zeros.data() + at + 8 * g)))
                                : _mm256_set1_epi32(lv.o);
                }
            }
            for (int64_t b = 0; b < batch; ++b) {
                __m256i D[4];
                const uint8_t* tb = tables.data() + b * table_bytes + k * s.pairs * 64;
                plane_sums(tile + k * s.block_bytes(), tb, s.pairs, D);
                for (int p = 1; p < s.bits; ++p) {
                    __m256i Dp[4];
                    plane_sums(tile + k * s.block_bytes() + p * s.pairs * 32, tb, s.pairs, Dp);
                    const __m128i shift = _mm_cvtsi32_si128(p);
                    for (int g = 0; g < 4; ++g) D[g] = _mm256_add_epi32(D[g], _mm256_sll_epi32(Dp[g], shift));
                }
                const __m256i X = _mm256_set1_epi32(a.X[b * s.padded + k]);
                const __m256 dk = _mm256_set1_ps(a.d[b * s.padded + k]);
                float* ak = acc[b][k % 4];
                for (int g = 0; g < 4; ++g) {
                    const __m256i aD = lv.a == 2 ? _mm256_add_epi32(D[g], D[g]) : D[g];
                    const __m256i T = _mm256_sub_epi32(aD, _mm256_mullo_epi32(o[g], X));
                    _mm256_store_ps(ak + 8 * g, _mm256_fmadd_ps(_mm256_cvtepi32_ps(T), _mm256_mul_ps(dk, f[g]),
                                                                _mm256_load_ps(ak + 8 * g)));
                }
            }
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

// The lookup GEMV proper (AVX2; w and lut checked).
void run_lut(const Int8Lut& l, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    const Plan s(l);
    const Acts a = quantize(l, s, x, batch, opt.threads);
    const int64_t pairs = s.blocks * s.pairs, width = s.blocks * l.block;
    std::vector<uint8_t> tables(batch * pairs * 64);  // [batch][blocks * pairs][64]
    detail::parallel_rows(batch * pairs, opt.threads, [&](int64_t u0, int64_t u1) QK_AVX2 {
        for (int64_t u = u0; u < u1; ++u) pair_tables(a.q.data() + (u / pairs) * width + 8 * (u % pairs), tables.data() + u * 64);
    });
    detail::parallel_rows(s.tiles, opt.threads, [&](int64_t t0, int64_t t1) { tiles_avx2(l, s, a, tables, batch, y, t0, t1); });
}

void check_call(int64_t batch, const float* x, const float* y) {
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
}

}  // namespace

bool has_int8_lut(const GridView& w) { return w.bits >= 1 && w.bits <= 3 && w.kind != GridKind::Ternary; }

Int8Lut int8_lut(const GridView& w, const CpuOptions& opt) {
    validate(w);
    if (!has_int8_lut(w))
        bad(std::to_string(w.bits) + "-bit " + (w.kind == GridKind::Ternary ? "ternary " : "") +
            "codes have no lookup table (1 to 3 bits, not ternary)");
    Int8Lut l;
    l.kind = w.kind;
    l.bits = w.bits;
    l.rows = w.rows, l.cols = w.cols, l.group = w.group;
    l.block = int8_block_cols(w);
    const Plan s(l);
    l.codes.assign(s.tiles * s.tile_bytes(), 0);
    l.scales.assign(s.tiles * s.groups * kTile, 0);
    if (w.kind == GridKind::AsymInt) l.zeros.assign(s.tiles * s.groups * kTile, 0);
    detail::parallel_rows(s.tiles, opt.threads, [&](int64_t t0, int64_t t1) {
        std::vector<uint8_t> u(w.cols);
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t j = 0; j < kTile && t * kTile + j < l.rows; ++j) {
                const int64_t r = t * kTile + j;
                row_codes(w, r, u);
                uint8_t* tile = l.codes.data() + t * s.tile_bytes() + (j % 16);
                const int shift = j < 16 ? 0 : 4;
                for (int64_t k = 0; k < s.blocks; ++k) {
                    const int64_t c0 = s.col0(l, k), n = s.width(l, k);
                    for (int p = 0; p < s.bits; ++p) {
                        uint8_t* plane = tile + k * s.block_bytes() + p * s.pairs * 32;
                        for (int64_t c = 0; c < n; ++c)
                            plane[(c / 8) * 32 + ((c / 4) % 2) * 16] |= static_cast<uint8_t>(((u[c0 + c] >> p) & 1u) << (shift + c % 4));
                    }
                }
                for (int64_t g = 0; g < s.groups; ++g) {
                    l.scales[(t * s.groups + g) * kTile + j] = w.scales[r * s.groups + g];
                    if (!l.zeros.empty())
                        l.zeros[(t * s.groups + g) * kTile + j] =
                            static_cast<uint8_t>(detail::code_at(w.zeros, w.zero_bytes, w.bits, r * s.groups + g));
                }
            }
    });
    return l;
}

Int8Lut int8_lut(const LiftView& w, const CpuOptions& opt) {
    validate(w);
    return int8_lut(detail::lift_sign_grid(w), opt);
}

Int8Lut int8_lut(const LatticeView& w, const CpuOptions& opt) {
    validate(w);
    const std::vector<uint16_t> ones(w.rows, float_to_half(1.0f));  // copied into the table
    return int8_lut(detail::lattice_code_grid(w, ones.data()), opt);
}

void grid_gemv_int8(const GridView& w, const Int8Lut& lut, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    validate(w);
    check_call(batch, x, y);
    check(w, lut);
    if (!detail::use_avx2(opt)) return grid_gemv_int8(w, x, y, batch, opt);
    run_lut(lut, x, y, batch, opt);
}

void lift_gemv_int8(const LiftView& w, const Int8Lut& lut, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    validate(w);
    check_call(batch, x, y);
    check(detail::lift_sign_grid(w), lut);
    if (!detail::use_avx2(opt)) return lift_gemv_int8(w, x, y, batch, opt);
    detail::lift_gemv_via(w, x, y, batch, opt, true, [&](const GridView&, const float* p, float* yy, int64_t b,
                                                         const CpuOptions& o) { run_lut(lut, p, yy, b, o); });
}

void lattice_gemv_int8(const LatticeView& w, const Int8Lut& lut, const float* x, float* y, int64_t batch,
                       const CpuOptions& opt) {
    validate(w);
    check_call(batch, x, y);
    const std::vector<uint16_t> ones(w.rows, float_to_half(1.0f));
    check(detail::lattice_code_grid(w, ones.data()), lut);
    if (!detail::use_avx2(opt)) return lattice_gemv_int8(w, x, y, batch, opt);
    detail::lattice_gemv_via(w, x, y, batch, opt, [&](const GridView&, const float* p, float* yy, int64_t b,
                                                      const CpuOptions& o) { run_lut(lut, p, yy, b, o); });
}

}  // namespace quench::kernels
