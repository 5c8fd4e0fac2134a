// Scalar-grid GEMV with int8 activations (see packed_int8.h for the contract). x is quantized once per call
// and stored in runs of 32 columns in the order the AVX2 decoder produces the codes of a run, so that one
// broadcast load, a shift and a mask give 32 codes in byte lanes ready for _mm256_maddubs_epi16:
//     4-bit: byte p < 16 holds the low nibble of code byte p (column 2p), byte 16 + p its high nibble
//     2-bit: byte 8k + i holds bits 2k..2k+1 of code byte i (column 4i + k)
//     1-bit: byte 4j + t holds bit j of code byte t (column 8t + j)
//     3-bit: column order; the run's 12 bytes are spread to 16-bit lanes of two codes each (see Bits3)
// Other widths and trits keep column order and are decoded one code at a time (correct, not fast).
// Blocks of 64 or 128 columns are two or four such runs of 32 sharing one scale. Both paths compute the same
// integer block dots and the same fp32 operations in the same order; every fp32 step is an explicit
// multiply, FMA or add, so no contraction can make the paths differ.
#include <immintrin.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "quench_kernels/packed_detail.h"
#include "quench_kernels/packed_int8.h"

namespace quench::kernels {
namespace {

constexpr int64_t QB = kInt8Block;

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("grid view (int8): " + what); }

enum class Layout { Natural, Plane4, Plane2, Plane1, Bits3 };

Layout layout_of(const GridView& w) {
    if (w.kind == GridKind::Ternary) return Layout::Natural;
    switch (w.bits) {
        case 4: return Layout::Plane4;
        case 2: return Layout::Plane2;
        case 1: return Layout::Plane1;
        case 3: return Layout::Bits3;
        default: return Layout::Natural;
    }
}

// Column (within its block) whose code and activation sit at byte p of the block.
inline int col_of(Layout l, int p) {
    switch (l) {
        case Layout::Plane4: return p < 16 ? 2 * p : 2 * (p - 16) + 1;
        case Layout::Plane2: return (p % 8) * 4 + p / 8;
        case Layout::Plane1: return (p % 4) * 8 + p / 4;
        default: return p;
    }
}

using detail::int_level;
using detail::IntLevel;

// Blocks of a row: each group is cut into blocks of ab = 32 sub columns (one activation scale each; see
// int8_block_cols), the last one possibly short, each made of `sub` runs of 32 codes in the
// layout's order. A short last group of the row keeps per_group blocks, those past its width empty (no
// columns: zero activations, d = 0). The row's count is padded to a multiple of 4 with empty blocks
// (d = 0, f = 0) so both paths run four accumulators.
struct BlockPlan {
    int sub;
    int64_t ab, groups, per_group, blocks, padded;
    BlockPlan(const GridView& w, int sub_blocks)
        : sub(sub_blocks), ab(QB * sub_blocks), groups(grid_groups(w)), per_group((w.group + ab - 1) / ab),
          blocks(groups * per_group), padded((blocks + 3) / 4 * 4) {}
    int64_t col0(int64_t g, int64_t kk, const GridView& w) const { return g * w.group + kk * ab; }
    int width(int64_t g, int64_t kk, const GridView& w) const {
        const int64_t group_width = std::min(w.group, w.cols - g * w.group);
        return static_cast<int>(std::max<int64_t>(0, std::min(ab, group_width - kk * ab)));
    }
};

// x quantized per block: q [batch][padded * ab] in the layout's byte order, d and the sum of q per block.
struct Int8Acts {
    std::vector<int8_t> q;
    std::vector<float> d;
    std::vector<int32_t> sum;
};

Int8Acts quantize_acts(const GridView& w, const BlockPlan& bp, Layout l, const float* x, int64_t batch) {
    Int8Acts a;
    a.q.assign(batch * bp.padded * bp.ab, 0);
    a.d.assign(batch * bp.padded, 0.f);
    a.sum.assign(batch * bp.padded, 0);
    int col[QB];  // the layout's permutation, looked up once
    for (int p = 0; p < QB; ++p) col[p] = col_of(l, p);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t g = 0; g < bp.groups; ++g)
            for (int64_t kk = 0; kk < bp.per_group; ++kk) {
                const int64_t k = b * bp.padded + g * bp.per_group + kk, c0 = bp.col0(g, kk, w);
                const int n = bp.width(g, kk, w);
                const float* xb = x + b * w.cols + c0;
                const detail::Int8Step st = detail::int8_step(xb, n);
                a.d[k] = st.d;
                int32_t s = 0;
                for (int p = 0; p < bp.ab; ++p) {
                    const int c = static_cast<int>(p / QB * QB) + col[p % QB];
                    if (c >= n) continue;
                    const int8_t qv = detail::int8_code(xb[c], st.id);
                    a.q[k * bp.ab + p] = qv;
                    s += qv;
                }
                a.sum[k] = s;
            }
    return a;
}

// f = scale * m and o of group g of row r (the AVX2 path computes the same values eight at a time).
inline float group_f(const GridView& w, const BlockPlan& bp, const IntLevel& lv, int64_t r, int64_t g) {
    return half_to_float(w.scales[r * bp.groups + g]) * lv.m;
}
inline int32_t group_o(const GridView& w, const BlockPlan& bp, const IntLevel& lv, int64_t r, int64_t g) {
    return w.kind == GridKind::AsymInt
               ? static_cast<int32_t>(detail::code_at(w.zeros, w.zero_bytes, w.bits, r * bp.groups + g))
               : lv.o;
}

// detail::trit_at for every byte value and position (5 trits per byte, first least significant): a lookup
// instead of two divisions per code.
struct TritTable {
    uint8_t t[256][5];
    TritTable() {
        for (int v = 0; v < 256; ++v)
            for (int i = 0, x = v; i < 5; ++i, x /= 3) t[v][i] = static_cast<uint8_t>(x % 3);
    }
};

// Codes of the block at stream element e0 (n of them, zero past), one at a time, in the layout's byte order.
void decode_block_generic(const GridView& w, Layout l, int64_t e0, int n, uint8_t* u) {
    if (w.kind == GridKind::Ternary) {  // column order (layout_of): whole bytes give five codes at once
        static const TritTable table;
        const int m = std::min<int>(n, static_cast<int>(QB));
        int64_t e = e0;
        int p = 0;
        for (; p < m && e % 5 != 0; ++p, ++e) u[p] = table.t[w.codes[e / 5]][e % 5];
        for (; p + 5 <= m; p += 5, e += 5) std::memcpy(u + p, table.t[w.codes[e / 5]], 5);
        for (; p < m; ++p, ++e) u[p] = table.t[w.codes[e / 5]][e % 5];
        for (; p < QB; ++p) u[p] = 0;
        return;
    }
    for (int p = 0; p < QB; ++p) {
        const int c = col_of(l, p);
        u[p] = c >= n ? 0
                      : static_cast<uint8_t>(w.kind == GridKind::Ternary ? detail::trit_at(w.codes, e0 + c)
                                                                          : detail::code_at(w.codes, w.code_bytes, w.bits, e0 + c));
    }
}

// ---- portable path ----

void rows_scalar(const GridView& w, const BlockPlan& bp, Layout l, const Int8Acts& a, float* y, int64_t batch,
                 int64_t r0, int64_t r1) {
    const IntLevel lv = int_level(w);
    std::vector<uint8_t> u(bp.ab);
    for (int64_t r = r0; r < r1; ++r) {
        float acc[8][4] = {};
        for (int64_t k = 0; k < bp.padded; ++k) {
            float f = 0.f;
            int32_t o = 0;
            const bool real = k < bp.blocks;
            if (real) {
                const int64_t g = k / bp.per_group, kk = k % bp.per_group;
                f = group_f(w, bp, lv, r, g), o = group_o(w, bp, lv, r, g);
                for (int sb = 0; sb < bp.sub; ++sb)
                    decode_block_generic(w, l, r * w.cols + bp.col0(g, kk, w) + sb * QB, bp.width(g, kk, w) - sb * static_cast<int>(QB),
                                         u.data() + sb * QB);
            }
            for (int64_t b = 0; b < batch; ++b) {
                const int64_t kb = b * bp.padded + k;
                int32_t D = 0;
                if (real)
                    for (int p = 0; p < bp.ab; ++p) D += static_cast<int32_t>(u[p]) * a.q[kb * bp.ab + p];
                const int32_t T = lv.a * D - o * a.sum[kb];
                acc[b][k % 4] = std::fma(static_cast<float>(T), a.d[kb] * f, acc[b][k % 4]);
            }
        }
        for (int64_t b = 0; b < batch; ++b)
            y[b * w.rows + r] = (acc[b][0] + acc[b][2]) + (acc[b][1] + acc[b][3]);
    }
}

// ---- AVX2 path ----

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))

template <Layout L, bool Wide>
QK_AVX2 inline __attribute__((always_inline)) __m256i decode_block_fast(const uint8_t* p) {
    if constexpr (L == Layout::Plane4) {
        const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
    } else if constexpr (L == Layout::Plane2) {
        int64_t v;
        std::memcpy(&v, p, 8);
        return _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(v), _mm256_setr_epi64x(0, 2, 4, 6)),
                                _mm256_set1_epi8(0x03));
    } else if constexpr (L == Layout::Plane1) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(v), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                                _mm256_set1_epi8(0x01));
    } else if constexpr (L == Layout::Bits3) {
        // 32 codes in 12 bytes. 16-bit lane h takes bytes (6h) >> 3 and the next, which hold codes 2h and
        // 2h + 1 at bit (6h) & 7 (0, 6, 4 or 2); a multiply puts the pair's 6 bits at the top of the lane, a
        // shift brings them down, and the two codes are split into the lane's low and high byte. Byte 12
        // (read by the last lane only for bits it discards) is zero: nothing past the run is loaded.
        int64_t lo;
        int32_t hi;
        std::memcpy(&lo, p, 8);
        std::memcpy(&hi, p + 8, 4);
        const __m256i v = _mm256_broadcastsi128_si256(_mm_insert_epi32(_mm_cvtsi64_si128(lo), hi, 2));
        const __m256i idx = _mm256_setr_epi8(0, 1, 0, 1, 1, 2, 2, 3, 3, 4, 3, 4, 4, 5, 5, 6,  //
                                             6, 7, 6, 7, 7, 8, 8, 9, 9, 10, 9, 10, 10, 11, 11, 12);
        const __m256i mul = _mm256_setr_epi16(1024, 16, 64, 256, 1024, 16, 64, 256, 1024, 16, 64, 256, 1024, 16, 64, 256);
        const __m256i t = _mm256_srli_epi16(_mm256_mullo_epi16(_mm256_shuffle_epi8(v, idx), mul), 10);
        return _mm256_or_si256(_mm256_and_si256(t, _mm256_set1_epi16(0x0007)),
                               _mm256_and_si256(_mm256_slli_epi16(t, 5), _mm256_set1_epi16(0x0700)));
    } else {
        static_assert(Wide, "only 8-bit codes load directly in column order");
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }
}

// Eight int32 partial sums of u . q (codes unsigned, activations signed). maddubs is exact for codes below
// 128 (|pair sum| <= 2 * 127 * 127 < 32768); 8-bit codes widen to int16 first.
template <bool Wide>
QK_AVX2 inline __attribute__((always_inline)) __m256i dot32(__m256i u, __m256i q) {
    if constexpr (Wide) {
        const __m256i lo = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(u)),
                                             _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)));
        const __m256i hi = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(u, 1)),
                                             _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)));
        return _mm256_add_epi32(lo, hi);
    } else {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
    }
}

// The four blocks' totals [D0, D1, D2, D3] from their eight-lane partial sums.
QK_AVX2 inline __attribute__((always_inline)) __m128i totals4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// Row r's f and o per group, eight scales at a time (per-group scalar work would otherwise cost as much as
// the codes with groups of 64). _mm256_cvtph_ps is exact, like half_to_float, so f equals group_f.
QK_AVX2 void group_params_avx2(const GridView& w, const BlockPlan& bp, const IntLevel& lv, int64_t r, float* f,
                               int32_t* o) {
    const int64_t first = r * bp.groups;
    int64_t g = 0;
    for (; g + 8 <= bp.groups; g += 8)
        _mm256_storeu_ps(f + g, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales + first + g))),
                                              _mm256_set1_ps(lv.m)));
    for (; g < bp.groups; ++g) f[g] = _cvtsh_ss(w.scales[first + g]) * lv.m;
    if (w.kind != GridKind::AsymInt) {
        for (g = 0; g < bp.groups; ++g) o[g] = lv.o;
        return;
    }
    const int B = w.bits;
    const uint32_t mask = (1u << B) - 1u;
    g = 0;
    if (B <= 4) {  // eight zero codes of up to 4 bits fit one 32-bit field: one variable shift splits them
        const __m256i shifts = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(B));
        for (; g + 8 <= bp.groups; g += 8) {
            const int64_t bit = (first + g) * B;
            const auto field = static_cast<uint32_t>(detail::load_u64(w.zeros, w.zero_bytes, bit >> 3) >> (bit & 7));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + g),
                                _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int32_t>(field)), shifts),
                                                 _mm256_set1_epi32(static_cast<int32_t>(mask))));
        }
    }
    for (; g < bp.groups; g += 8) {  // eight zero codes from one 64-bit read (8 B + 7 <= 64 bits for B < 8)
        const int64_t bit = (first + g) * B;
        const uint64_t field = detail::load_u64(w.zeros, w.zero_bytes, bit >> 3) >> (bit & 7);
        for (int i = 0; i < 8 && g + i < bp.groups; ++i) o[g + i] = static_cast<int32_t>((field >> (B * i)) & mask);
    }
}

// The S runs' partial sums added. With S > 1 the int16 pair sums of the runs are added before widening:
// |sum| <= 4 * 2 * 15 * 127 < 32768, as only codes of 1, 2, 3 or 4 bits take S > 1.
template <int S, bool Wide>
QK_AVX2 inline __attribute__((always_inline)) __m256i block_dot(const __m256i (&u)[S], const int8_t* q) {
    const auto run = [&](int sb) QK_AVX2 { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + sb * QB)); };
    if constexpr (S > 1 && !Wide) {
        __m256i h = _mm256_maddubs_epi16(u[0], run(0));
        for (int sb = 1; sb < S; ++sb) h = _mm256_add_epi16(h, _mm256_maddubs_epi16(u[sb], run(sb)));
        return _mm256_madd_epi16(h, _mm256_set1_epi16(1));
    }
    __m256i d = dot32<Wide>(u[0], run(0));
    for (int sb = 1; sb < S; ++sb) d = _mm256_add_epi32(d, dot32<Wide>(u[sb], run(sb)));
    return d;
}

// Blocks k0..k0+3 of one row (codes u) into the NB accumulators: D per block from the eight-lane dots,
// T = a D - o X, acc += T * (d f).
template <int NB, int S, bool Wide>
QK_AVX2 inline __attribute__((always_inline)) void chunk_avx2(const Int8Acts& a, const BlockPlan& bp, const __m256i (&u)[4][S], int64_t k0, __m128 fv,
                               __m128i ov, bool twice, __m128 (&acc)[NB]) {
    constexpr int64_t AB = S * QB;
    for (int b = 0; b < NB; ++b) {
        const int64_t kb = b * bp.padded + k0;
        const int8_t* q = a.q.data() + kb * AB;
        __m128i D = totals4(block_dot<S, Wide>(u[0], q), block_dot<S, Wide>(u[1], q + AB), block_dot<S, Wide>(u[2], q + 2 * AB),
                            block_dot<S, Wide>(u[3], q + 3 * AB));
        if (twice) D = _mm_add_epi32(D, D);
        const __m128i T =
            _mm_sub_epi32(D, _mm_mullo_epi32(ov, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.sum.data() + kb))));
        const __m128 df = _mm_mul_ps(_mm_loadu_ps(a.d.data() + kb), fv);
        acc[b] = _mm_fmadd_ps(_mm_cvtepi32_ps(T), df, acc[b]);
    }
}

// One row at a time for NB vectors, four blocks per step.
template <int NB, int S, Layout L, bool Wide>
QK_AVX2 void rows_avx2(const GridView& w, const BlockPlan& bp, const Int8Acts& a, float* y, int64_t r0, int64_t r1) {
    constexpr bool kFastLayout = L != Layout::Natural || Wide;
    const int bits = w.bits;
    const IntLevel lv = int_level(w);
    const bool twice = lv.a == 2;
    // Per-group f and o (padded by 4 so that a step may read past the last group), and per-block copies for
    // group sizes where four blocks are not 1, 2 or 4 whole groups.
    std::vector<float> f(bp.groups + 4, 0.f), fb(bp.padded, 0.f);
    std::vector<int32_t> o(bp.groups + 4, 0), ob(bp.padded, 0);
    const int64_t pg = bp.per_group;
    const bool per_block = !(pg == 1 || pg == 2 || pg % 4 == 0);
    alignas(32) uint8_t buf[4][S][QB];
    for (int64_t r = r0; r < r1; ++r) {
        group_params_avx2(w, bp, lv, r, f.data(), o.data());
        if (per_block)
            for (int64_t k = 0; k < bp.blocks; ++k) fb[k] = f[k / pg], ob[k] = o[k / pg];
        __m128 acc[NB];
        for (int b = 0; b < NB; ++b) acc[b] = _mm_setzero_ps();
        int64_t g4 = 0, in4 = 0;
        // f and o of blocks k0..k0+3 (blocks past the row's end get f = 0, o = 0 from the padding).
        const auto params = [&](int64_t k0) QK_AVX2 {
            if (pg % 4 == 0) {  // k0 / pg without a division per step: steps arrive in order
                if (k0 == 0) g4 = 0, in4 = 0;
                else if ((in4 += 4) == pg) in4 = 0, ++g4;
                return std::make_pair(_mm_set1_ps(f[g4]), _mm_set1_epi32(o[g4]));
            }
            if (pg == 1)
                return std::make_pair(_mm_loadu_ps(f.data() + k0), _mm_loadu_si128(reinterpret_cast<const __m128i*>(o.data() + k0)));
            if (pg == 2) {
                const int64_t g = k0 / 2;
                return std::make_pair(_mm_setr_ps(f[g], f[g], f[g + 1], f[g + 1]), _mm_setr_epi32(o[g], o[g], o[g + 1], o[g + 1]));
            }
            return std::make_pair(_mm_loadu_ps(fb.data() + k0), _mm_loadu_si128(reinterpret_cast<const __m128i*>(ob.data() + k0)));
        };
        bool regular = false;
        if constexpr (kFastLayout)
            regular = w.group % bp.ab == 0 && w.cols % w.group == 0 && (r * w.cols * bits) % 8 == 0;
        if constexpr (kFastLayout) {
            if (regular) {
                // Every run is 32 whole codes starting on a byte: 4 * bits bytes each, back to back.
                const uint8_t* row = w.codes + (r * w.cols * bits) / 8;
                const int64_t step = 4 * bits;
                int64_t k0 = 0;
                for (; k0 + 4 <= bp.blocks; k0 += 4) {
                    __m256i u[4][S];
                    for (int i = 0; i < 4; ++i)
                        for (int sb = 0; sb < S; ++sb) u[i][sb] = decode_block_fast<L, Wide>(row + ((k0 + i) * S + sb) * step);
                    const auto [fv, ov] = params(k0);
                    chunk_avx2<NB, S, Wide>(a, bp, u, k0, fv, ov, twice, acc);
                }
                if (k0 < bp.blocks) {  // the last, partly empty step
                    __m256i u[4][S];
                    for (int i = 0; i < 4; ++i)
                        for (int sb = 0; sb < S; ++sb)
                            u[i][sb] = k0 + i < bp.blocks ? decode_block_fast<L, Wide>(row + ((k0 + i) * S + sb) * step)
                                                          : _mm256_setzero_si256();
                    const auto [fv, ov] = params(k0);
                    chunk_avx2<NB, S, Wide>(a, bp, u, k0, fv, ov, twice, acc);
                }
            }
        }
        if (!regular) {
            // Short blocks or rows starting mid-byte: blocks decoded one code at a time.
            for (int64_t k0 = 0; k0 < bp.padded; k0 += 4) {
                __m256i u[4][S];
                for (int i = 0; i < 4; ++i) {
                    const int64_t k = k0 + i, g = k / pg, kk = k % pg;
                    for (int sb = 0; sb < S; ++sb) {
                        if (k >= bp.blocks) {
                            u[i][sb] = _mm256_setzero_si256();
                            continue;
                        }
                        decode_block_generic(w, L, r * w.cols + bp.col0(g, kk, w) + sb * QB, bp.width(g, kk, w) - sb * static_cast<int>(QB),
                                             buf[i][sb]);
                        u[i][sb] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf[i][sb]));
                    }
                }
                const auto [fv, ov] = params(k0);
                chunk_avx2<NB, S, Wide>(a, bp, u, k0, fv, ov, twice, acc);
            }
        }
        for (int b = 0; b < NB; ++b) {
            const __m128 s = _mm_add_ps(acc[b], _mm_movehl_ps(acc[b], acc[b]));  // [a0 + a2, a1 + a3]
            y[b * w.rows + r] = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
        }
    }
}

template <int S, Layout L, bool Wide>
void rows_avx2_batch(const GridView& w, const BlockPlan& bp, const Int8Acts& a, float* y, int64_t batch, int64_t r0,
                     int64_t r1) {
    switch (batch) {
        case 1: return rows_avx2<1, S, L, Wide>(w, bp, a, y, r0, r1);
        case 2: return rows_avx2<2, S, L, Wide>(w, bp, a, y, r0, r1);
        case 3: return rows_avx2<3, S, L, Wide>(w, bp, a, y, r0, r1);
        case 4: return rows_avx2<4, S, L, Wide>(w, bp, a, y, r0, r1);
        case 5: return rows_avx2<5, S, L, Wide>(w, bp, a, y, r0, r1);
        case 6: return rows_avx2<6, S, L, Wide>(w, bp, a, y, r0, r1);
        case 7: return rows_avx2<7, S, L, Wide>(w, bp, a, y, r0, r1);
        default: return rows_avx2<8, S, L, Wide>(w, bp, a, y, r0, r1);
    }
}

template <int S>
void rows_avx2_any(const GridView& w, const BlockPlan& bp, Layout l, const Int8Acts& a, float* y, int64_t batch,
                   int64_t r0, int64_t r1) {
    const bool wide = l == Layout::Natural && w.kind != GridKind::Ternary && w.bits == 8;
    switch (l) {
        case Layout::Plane4: return rows_avx2_batch<S, Layout::Plane4, false>(w, bp, a, y, batch, r0, r1);
        case Layout::Plane2: return rows_avx2_batch<S, Layout::Plane2, false>(w, bp, a, y, batch, r0, r1);
        case Layout::Plane1: return rows_avx2_batch<S, Layout::Plane1, false>(w, bp, a, y, batch, r0, r1);
        case Layout::Bits3: return rows_avx2_batch<S, Layout::Bits3, false>(w, bp, a, y, batch, r0, r1);
        default:
            if (wide) return rows_avx2_batch<S, Layout::Natural, true>(w, bp, a, y, batch, r0, r1);
            return rows_avx2_batch<S, Layout::Natural, false>(w, bp, a, y, batch, r0, r1);
    }
}

}  // namespace

detail::IntLevel detail::int_level(const GridView& w) {
    switch (w.kind) {
        case GridKind::SymInt: return {1, 1 << (w.bits - 1), 1.0f};
        case GridKind::Binary: return {2, 1, 1.0f};
        case GridKind::Ternary: return {1, 1, static_cast<float>(2.0 / 3.0)};
        case GridKind::Seq: return {2, 3, 0.25f};
        default: return {1, 0, 1.0f};  // AsymInt (o is each group's zero code) and Unsigned
    }
}

int64_t int8_block_cols(const GridView& w) {
    if (layout_of(w) == Layout::Natural) return QB;
    return w.group % (4 * QB) == 0 ? 4 * QB : w.group % (2 * QB) == 0 ? 2 * QB : QB;
}

void grid_gemv_int8(const GridView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt) {
    validate(w);
    if (batch < 1 || batch > 8) bad("batch " + std::to_string(batch) + " is outside 1..8");
    if (!x || !y) bad("x or y is null");
    const bool avx2 = detail::use_avx2(opt);
    const int sub = static_cast<int>(int8_block_cols(w) / QB);
    const BlockPlan bp(w, sub);
    const Layout l = layout_of(w);
    const Int8Acts a = quantize_acts(w, bp, l, x, batch);
    detail::parallel_rows(w.rows, opt.threads, [&](int64_t r0, int64_t r1) {
        if (!avx2) rows_scalar(w, bp, l, a, y, batch, r0, r1);
        else if (sub == 4) rows_avx2_any<4>(w, bp, l, a, y, batch, r0, r1);
        else if (sub == 2) rows_avx2_any<2>(w, bp, l, a, y, batch, r0, r1);
        else rows_avx2_any<1>(w, bp, l, a, y, batch, r0, r1);
    });
}

}  // namespace quench::kernels
