#include "quant/ggml_blocks.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "model/dtype.h"

namespace quench {

namespace {

static_assert(sizeof(float) == 4, "GGUF stores IEEE binary32");

const std::vector<GgmlTypeInfo> kTypes = {
    {GgmlType::F32, "F32", 1, 4},       {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},   {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},   {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},   {GgmlType::Q2_K, "Q2_K", 256, 84},
    {GgmlType::Q3_K, "Q3_K", 256, 110}, {GgmlType::Q4_K, "Q4_K", 256, 144},
    {GgmlType::Q5_K, "Q5_K", 256, 176}, {GgmlType::Q6_K, "Q6_K", 256, 210},
};

// ---- scalar helpers -------------------------------------------------------------------------------------

// GGUF is little-endian; fp16 fields are written byte by byte so the host's endianness never matters.
void put_half(uint8_t* p, uint16_t h) {
    p[0] = uint8_t(h & 0xFF);
    p[1] = uint8_t(h >> 8);
}
uint16_t get_half_bits(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
float get_half(const uint8_t* p) { return half_to_float(get_half_bits(p)); }

int nearest(float v) { return int(std::lrintf(v)); }
int clampi(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

// Neighbouring fp16 values, for scales that must not round the wrong way (a Q4_1 minimum above the block's
// smallest value, or a step that no longer reaches its largest, would break the d/2 error bound).
uint16_t half_below(uint16_t h) {
    if (h == 0x0000) return 0x8001;
    return (h & 0x8000) ? uint16_t(h + 1) : uint16_t(h - 1);
}
uint16_t half_above(uint16_t h) {
    if (h == 0x8000) return 0x0001;
    return (h & 0x8000) ? uint16_t(h - 1) : uint16_t(h + 1);
}
uint16_t half_at_most(float v) {
    uint16_t h = float_to_half(v);
    return half_to_float(h) > v ? half_below(h) : h;
}
uint16_t half_at_least(float v) {
    uint16_t h = float_to_half(v);
    return half_to_float(h) < v ? half_above(h) : h;
}

// The largest-magnitude element, with its sign (ggml maps it onto the extra negative level of a signed grid).
float signed_absmax(const float* x, int n) {
    float m = 0, am = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > am) {
            am = std::fabs(x[i]);
            m = x[i];
        }
    return m;
}

// ---- scale searches (ours; ggml searches more candidates and weights by importance) -----------------------

// Best s for x ~ s * q, q in [qmin, qmax] (qmin = -qmax - 1). Tries grids that put the largest-magnitude
// element near qmin, then refits s by least squares for each grid's codes; keeps the lowest squared error.
float fit_symmetric(const float* x, int n, int qmin, int qmax) {
    const float m = signed_absmax(x, n);
    if (m == 0) return 0;
    float best_s = m / float(qmin), best_gain = -1;  // gains compared in float: 16 or 32 terms
    for (int t = -9; t <= 9; ++t) {
        const float iscale = (float(qmin) + 0.1f * float(t)) / m;
        float sxq = 0, sqq = 0;
        for (int i = 0; i < n; ++i) {
            const int q = clampi(nearest(iscale * x[i]), qmin, qmax);
            sxq += x[i] * float(q);
            sqq += float(q * q);
        }
        // Squared error after the refit is sum(x^2) - sxq^2 / sqq, so maximizing sxq^2 / sqq minimizes it.
        if (sqq > 0 && sxq * sxq / sqq > best_gain) {
            best_gain = sxq * sxq / sqq;
            best_s = float(sxq / sqq);
        }
    }
    return best_s;
}

// Best (s >= 0, m >= 0) for x ~ s * q - m, q in [0, nmax]. The offset m is kept >= 0 (the block's minimum
// clipped at zero) because K-quant mins are unsigned codes times a shared positive dmin.
void fit_affine(const float* x, int n, int nmax, float* s_out, float* m_out) {
    float lo = 0, hi = x[0];
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    if (hi <= lo) {
        *s_out = 0;
        *m_out = -lo;
        return;
    }
    double sx = 0, sxx = 0;
    for (int i = 0; i < n; ++i) {
        sx += x[i];
        sxx += double(x[i]) * x[i];
    }
    float best_s = (hi - lo) / float(nmax), best_b = lo;
    double best_err = -1;
    for (int t = 0; t <= 20; ++t) {
        const float iscale = (float(nmax) - 1.0f + 0.1f * float(t)) / (hi - lo);
        double sq = 0, sqq = 0, sxq = 0;
        for (int i = 0; i < n; ++i) {
            const int q = clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
            sq += q;
            sqq += double(q) * q;
            sxq += double(x[i]) * q;
        }
        // Least-squares line x ~ a q + b through the codes; b > 0 is not representable, so refit with b = 0.
        const double det = n * sqq - sq * sq;
        if (det <= 0) continue;
        double a = (n * sxq - sx * sq) / det, b = (sqq * sx - sq * sxq) / det;
        if (b > 0) {
            b = 0;
            a = sxq / sqq;
        }
        if (a <= 0) continue;
        const double err = sxx + a * a * sqq + n * b * b - 2 * a * sxq - 2 * b * sx + 2 * a * b * sq;
        if (best_err < 0 || err < best_err) {
            best_err = err;
            best_s = float(a);
            best_b = float(b);
        }
    }
    *s_out = best_s;
    *m_out = -best_b;
}

// ---- legacy 32-element blocks -----------------------------------------------------------------------------

// Q8_0: d (fp16), qs[32] int8.   y[i] = qs[i] * d
void quantize_q8_0(const float* x, uint8_t* b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const uint16_t dh = float_to_half(amax / 127.0f);
    const float d = half_to_float(dh);
    put_half(b, dh);
    for (int i = 0; i < 32; ++i) b[2 + i] = uint8_t(int8_t(d > 0 ? clampi(nearest(x[i] / d), -127, 127) : 0));
}

// Q4_0 / Q5_0: d (fp16), [qh u32 for Q5_0], qs[16]; element j in the low nibble of qs[j], j+16 in the high.
void quantize_sym_legacy(const float* x, uint8_t* b, int bits) {
    const int levels = 1 << bits, offset = levels / 2;
    const uint16_t dh = float_to_half(signed_absmax(x, 32) / float(-offset));
    const float d = half_to_float(dh);
    put_half(b, dh);
    uint8_t* qs = b + (bits == 5 ? 6 : 2);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const int q0 = d != 0 ? clampi(nearest(x[j] / d) + offset, 0, levels - 1) : offset;
        const int q1 = d != 0 ? clampi(nearest(x[j + 16] / d) + offset, 0, levels - 1) : offset;
        qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= uint32_t(q0 >> 4) << j;
        qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    if (bits == 5)
        for (int k = 0; k < 4; ++k) b[2 + k] = uint8_t(qh >> (8 * k));
}

// Q4_1 / Q5_1: d, m (fp16), [qh for Q5_1], qs[16].   y = q * d + m
void quantize_affine_legacy(const float* x, uint8_t* b, int bits) {
    const int nmax = (1 << bits) - 1;
    float lo = x[0], hi = x[0];
    for (int i = 1; i < 32; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    // m rounded down and d up so [m, m + nmax d] still covers the block after fp16 rounding.
    const uint16_t mh = half_at_most(lo);
    const float m = half_to_float(mh);
    const uint16_t dh = half_at_least((hi - m) / float(nmax));
    const float d = half_to_float(dh);
    put_half(b, dh);
    put_half(b + 2, mh);
    uint8_t* qs = b + (bits == 5 ? 8 : 4);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const int q0 = d > 0 ? clampi(nearest((x[j] - m) / d), 0, nmax) : 0;
        const int q1 = d > 0 ? clampi(nearest((x[j + 16] - m) / d), 0, nmax) : 0;
        qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= uint32_t(q0 >> 4) << j;
        qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    if (bits == 5)
        for (int k = 0; k < 4; ++k) b[4 + k] = uint8_t(qh >> (8 * k));
}

void dequantize_legacy(GgmlType t, const uint8_t* b, float* y) {
    const float d = get_half(b);
    switch (t) {
        case GgmlType::Q8_0:
            for (int i = 0; i < 32; ++i) y[i] = float(int8_t(b[2 + i])) * d;
            return;
        case GgmlType::Q4_0:
            for (int j = 0; j < 16; ++j) {
                y[j] = float((b[2 + j] & 0x0F) - 8) * d;
                y[j + 16] = float((b[2 + j] >> 4) - 8) * d;
            }
            return;
        case GgmlType::Q4_1: {
            const float m = get_half(b + 2);
            for (int j = 0; j < 16; ++j) {
                y[j] = float(b[4 + j] & 0x0F) * d + m;
                y[j + 16] = float(b[4 + j] >> 4) * d + m;
            }
            return;
        }
        case GgmlType::Q5_0: {
            const uint32_t qh = uint32_t(b[2]) | uint32_t(b[3]) << 8 | uint32_t(b[4]) << 16 | uint32_t(b[5]) << 24;
            for (int j = 0; j < 16; ++j) {
                const int h0 = int((qh >> j) & 1) << 4, h1 = int((qh >> (j + 16)) & 1) << 4;
                y[j] = float(((b[6 + j] & 0x0F) | h0) - 16) * d;
                y[j + 16] = float(((b[6 + j] >> 4) | h1) - 16) * d;
            }
            return;
        }
        case GgmlType::Q5_1: {
            const float m = get_half(b + 2);
            const uint32_t qh = uint32_t(b[4]) | uint32_t(b[5]) << 8 | uint32_t(b[6]) << 16 | uint32_t(b[7]) << 24;
            for (int j = 0; j < 16; ++j) {
                const int h0 = int((qh >> j) & 1) << 4, h1 = int((qh >> (j + 16)) & 1) << 4;
                y[j] = float((b[8 + j] & 0x0F) | h0) * d + m;
                y[j + 16] = float((b[8 + j] >> 4) | h1) * d + m;
            }
            return;
        }
        default:
            return;
    }
}

// ---- K-quants: 256-element super-blocks -------------------------------------------------------------------

// The 12-byte scale/min field of Q4_K and Q5_K (6 bits each for 8 sub-blocks): bytes 0-3 hold sc[0..3] in
// their low 6 bits and sc[4..7] >> 4 in the top 2; bytes 4-7 the same for the mins; bytes 8-11 hold
// sc[4..7] & 15 (low nibble) and m[4..7] & 15 (high nibble).
void pack_k4_scales(const int* sc, const int* mn, uint8_t* s) {
    for (int j = 0; j < 4; ++j) {
        s[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = uint8_t((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}
void unpack_k4_scale(int j, const uint8_t* s, int* sc, int* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Shared by Q2_K (16 x 16, nmax 3, 4-bit sc/m), Q4_K and Q5_K (8 x 32, nmax 15/31, 6-bit sc/m): fits each
// sub-block, quantizes the sub-block scales and mins against fp16 d and dmin, then picks codes against the
// final decoded step and offset. Writes d, dmin and codes L[256]; returns sc/m through the arrays.
void quantize_k_affine(const float* x, int sub, int nmax, int smax, uint16_t* dh, uint16_t* dminh, int* sc,
                       int* mn, uint8_t* L) {
    const int nsub = 256 / sub;
    float s[16], m[16], max_s = 0, max_m = 0;
    for (int j = 0; j < nsub; ++j) {
        fit_affine(x + sub * j, sub, nmax, &s[j], &m[j]);
        max_s = std::max(max_s, s[j]);
        max_m = std::max(max_m, m[j]);
    }
    *dh = float_to_half(max_s / float(smax));
    *dminh = float_to_half(max_m / float(smax));
    const float d = half_to_float(*dh), dmin = half_to_float(*dminh);
    for (int j = 0; j < nsub; ++j) {
        sc[j] = d > 0 ? clampi(nearest(s[j] / d), 0, smax) : 0;
        mn[j] = dmin > 0 ? clampi(nearest(m[j] / dmin), 0, smax) : 0;
        const float step = d * float(sc[j]), off = dmin * float(mn[j]), inv = step > 0 ? 1.0f / step : 0.0f;
        for (int i = 0; i < sub; ++i) L[sub * j + i] = uint8_t(clampi(nearest((x[sub * j + i] + off) * inv), 0, nmax));
    }
}

// Q2_K: scales[16] (sc | m << 4), qs[64], d, dmin.   y = d*sc*q - dmin*m, q in 0..3
void quantize_q2_k(const float* x, uint8_t* b) {
    uint16_t dh, dminh;
    int sc[16], mn[16];
    uint8_t L[256];
    quantize_k_affine(x, 16, 3, 15, &dh, &dminh, sc, mn, L);
    for (int j = 0; j < 16; ++j) b[j] = uint8_t(sc[j] | (mn[j] << 4));
    uint8_t* qs = b + 16;
    // Element e: byte 32*(e/128) + e%32, bit pair (e%128)/32.
    for (int e = 0; e < 256; ++e) qs[32 * (e / 128) + e % 32] |= uint8_t(L[e] << (2 * ((e % 128) / 32)));
    put_half(b + 80, dh);
    put_half(b + 82, dminh);
}

// Q4_K: d, dmin, scales[12], qs[128].   y = d*sc*q - dmin*m, q in 0..15
// Q5_K: d, dmin, scales[12], qh[32], qs[128], q in 0..31 with bit 4 in qh.
void quantize_q45_k(const float* x, uint8_t* b, int bits) {
    uint16_t dh, dminh;
    int sc[8], mn[8];
    uint8_t L[256];
    quantize_k_affine(x, 32, (1 << bits) - 1, 63, &dh, &dminh, sc, mn, L);
    put_half(b, dh);
    put_half(b + 2, dminh);
    pack_k4_scales(sc, mn, b + 4);
    uint8_t* qh = b + 16;
    uint8_t* qs = b + (bits == 5 ? 48 : 16);
    // Element e: byte 32*(e/64) + e%32, low nibble for the first 32 of each 64, high for the second;
    // Q5_K's fifth bit goes to qh[e%32], bit e/32.
    for (int e = 0; e < 256; ++e) {
        qs[32 * (e / 64) + e % 32] |= uint8_t((L[e] & 0xF) << ((e % 64) >= 32 ? 4 : 0));
        if (bits == 5) qh[e % 32] |= uint8_t((L[e] >> 4) << (e / 32));
    }
}

// Q3_K: hmask[32], qs[64], scales[12], d.   y = d*(sc-32)*(q-4), q in 0..7, sc 6-bit
void quantize_q3_k(const float* x, uint8_t* b) {
    float s[16];
    for (int j = 0; j < 16; ++j) s[j] = fit_symmetric(x + 16 * j, 16, -4, 3);
    const uint16_t dh = float_to_half(signed_absmax(s, 16) / -32.0f);
    const float d = half_to_float(dh);
    uint8_t* hmask = b;
    uint8_t* qs = b + 32;
    uint8_t* scales = b + 96;
    for (int j = 0; j < 16; ++j) {
        const int sc = d != 0 ? clampi(nearest(s[j] / d), -32, 31) : 0;
        const int v = sc + 32;  // stored biased, 6 bits: low nibble in byte j%8 (high nibble for j >= 8),
        scales[j % 8] |= uint8_t((v & 0xF) << (j >= 8 ? 4 : 0));  // top 2 bits in byte 8 + j%4 at bit 2*(j/4)
        scales[8 + j % 4] |= uint8_t((v >> 4) << (2 * (j / 4)));
        const float step = d * float(sc), inv = step != 0 ? 1.0f / step : 0.0f;
        for (int i = 0; i < 16; ++i) {
            const int e = 16 * j + i;
            const int q = clampi(nearest(x[e] * inv), -4, 3) + 4;
            // Element e: low 2 bits in qs[32*(e/128) + e%32] at bit pair (e%128)/32; the third bit in
            // hmask[e%32] at bit e/32.
            qs[32 * (e / 128) + e % 32] |= uint8_t((q & 3) << (2 * ((e % 128) / 32)));
            hmask[e % 32] |= uint8_t((q >> 2) << (e / 32));
        }
    }
    put_half(b + 108, dh);
}

// Q6_K: ql[128], qh[64], scales[16] int8, d.   y = d*sc*(q-32), q in 0..63
void quantize_q6_k(const float* x, uint8_t* b) {
    float s[16];
    for (int j = 0; j < 16; ++j) s[j] = fit_symmetric(x + 16 * j, 16, -32, 31);
    const uint16_t dh = float_to_half(signed_absmax(s, 16) / -128.0f);
    const float d = half_to_float(dh);
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    for (int j = 0; j < 16; ++j) {
        const int sc = d != 0 ? clampi(nearest(s[j] / d), -128, 127) : 0;
        b[192 + j] = uint8_t(int8_t(sc));
        const float step = d * float(sc), inv = step != 0 ? 1.0f / step : 0.0f;
        for (int i = 0; i < 16; ++i) {
            const int e = 16 * j + i;
            const int q = clampi(nearest(x[e] * inv), -32, 31) + 32;
            // Element e = 128h + 32k + l: low nibble in ql[64h + l + 32*(k&1)] (high half of the byte for
            // k >= 2), top 2 bits in qh[32h + l] at bit pair k.
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            ql[64 * h + l + 32 * (k & 1)] |= uint8_t((q & 0xF) << (k >= 2 ? 4 : 0));
            qh[32 * h + l] |= uint8_t((q >> 4) << (2 * k));
        }
    }
    put_half(b + 208, dh);
}

// Decoders, written as ggml's loops are (the documented contract), not as the index formulas above, so a
// slip in either one shows up as a round-trip failure.
void dequantize_q2_k(const uint8_t* b, float* y) {
    const float d = get_half(b + 80), dmin = get_half(b + 82);
    const uint8_t* q = b + 16;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; ++half) {
                const uint8_t sc = b[is++];
                const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * half] >> shift) & 3) - ml;
            }
}

void dequantize_q3_k(const uint8_t* b, float* y) {
    const uint8_t* hm = b;
    const uint8_t* q = b + 32;
    const uint8_t* s = b + 96;
    const float d = get_half(b + 108);
    int sc[16];
    for (int j = 0; j < 16; ++j) {
        const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        sc[j] = (low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1))
            for (int half = 0; half < 2; ++half) {
                const float dl = d * float(sc[is++]);
                for (int l = 0; l < 16; ++l) {
                    const int i = l + 16 * half;
                    *y++ = dl * float(((q[i] >> shift) & 3) - ((hm[i] & m) ? 0 : 4));
                }
            }
}

void dequantize_q45_k(const uint8_t* b, float* y, int bits) {
    const float d = get_half(b), dmin = get_half(b + 2);
    const uint8_t* s = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + (bits == 5 ? 48 : 16);
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, ql += 32, is += 2) {
        int sc, mn;
        unpack_k4_scale(is, s, &sc, &mn);
        const float d1 = d * float(sc), m1 = dmin * float(mn);
        unpack_k4_scale(is + 1, s, &sc, &mn);
        const float d2 = d * float(sc), m2 = dmin * float(mn);
        for (int l = 0; l < 32; ++l) {
            const int hi = bits == 5 && (qh[l] & u1) ? 16 : 0;
            *y++ = d1 * float((ql[l] & 0xF) + hi) - m1;
        }
        for (int l = 0; l < 32; ++l) {
            const int hi = bits == 5 && (qh[l] & u2) ? 16 : 0;
            *y++ = d2 * float((ql[l] >> 4) + hi) - m2;
        }
        u1 = uint8_t(u1 << 2);
        u2 = uint8_t(u2 << 2);
    }
}

void dequantize_q6_k(const uint8_t* b, float* y) {
    const float d = get_half(b + 208);
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * float(sc[is]) * float(q1);
            y[l + 32] = d * float(sc[is + 2]) * float(q2);
            y[l + 64] = d * float(sc[is + 4]) * float(q3);
            y[l + 96] = d * float(sc[is + 6]) * float(q4);
        }
}

}  // namespace

const std::vector<GgmlTypeInfo>& ggml_types() { return kTypes; }

const GgmlTypeInfo* ggml_type_info_raw(uint32_t raw) {
    for (const auto& t : kTypes)
        if (uint32_t(t.type) == raw) return &t;
    return nullptr;
}

const GgmlTypeInfo& ggml_type_info(GgmlType t) {
    const GgmlTypeInfo* info = ggml_type_info_raw(uint32_t(t));
    if (!info) throw Error("ggml type " + std::to_string(uint32_t(t)) + ": not supported");
    return *info;
}

const char* ggml_type_name(GgmlType t) { return ggml_type_info(t).name; }

std::optional<GgmlType> ggml_type_from_name(const std::string& name) {
    std::string up = name;
    for (char& c : up) c = char(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& t : kTypes)
        if (up == t.name) return t.type;
    return std::nullopt;
}

std::size_t ggml_row_bytes(GgmlType t, int64_t n) {
    const GgmlTypeInfo& info = ggml_type_info(t);
    if (n < 0 || n % info.block_elems != 0)
        throw Error(std::string(info.name) + ": row length " + std::to_string(n) + " is not a multiple of " +
                    std::to_string(info.block_elems));
    return std::size_t(n / info.block_elems) * std::size_t(info.block_bytes);
}

void ggml_quantize_row(GgmlType t, const float* x, int64_t n, uint8_t* out) {
    const std::size_t bytes = ggml_row_bytes(t, n);
    const GgmlTypeInfo& info = ggml_type_info(t);
    if (t == GgmlType::F32) {
        for (int64_t i = 0; i < n; ++i) {  // little-endian on every host
            uint32_t v;
            std::memcpy(&v, &x[i], 4);
            for (int k = 0; k < 4; ++k) out[4 * i + k] = uint8_t(v >> (8 * k));
        }
        return;
    }
    if (t == GgmlType::F16) {
        for (int64_t i = 0; i < n; ++i) put_half(out + 2 * i, float_to_half(x[i]));
        return;
    }
    std::memset(out, 0, bytes);  // the packers OR bits into place
    for (int64_t blk = 0; blk < n / info.block_elems; ++blk) {
        const float* xb = x + blk * info.block_elems;
        uint8_t* b = out + blk * info.block_bytes;
        switch (t) {
            case GgmlType::Q8_0: quantize_q8_0(xb, b); break;
            case GgmlType::Q4_0: quantize_sym_legacy(xb, b, 4); break;
            case GgmlType::Q5_0: quantize_sym_legacy(xb, b, 5); break;
            case GgmlType::Q4_1: quantize_affine_legacy(xb, b, 4); break;
            case GgmlType::Q5_1: quantize_affine_legacy(xb, b, 5); break;
            case GgmlType::Q2_K: quantize_q2_k(xb, b); break;
            case GgmlType::Q3_K: quantize_q3_k(xb, b); break;
            case GgmlType::Q4_K: quantize_q45_k(xb, b, 4); break;
            case GgmlType::Q5_K: quantize_q45_k(xb, b, 5); break;
            case GgmlType::Q6_K: quantize_q6_k(xb, b); break;
            default: break;
        }
    }
}

void ggml_dequantize_row(GgmlType t, const uint8_t* in, int64_t n, float* y) {
    ggml_row_bytes(t, n);  // validates n
    const GgmlTypeInfo& info = ggml_type_info(t);
    if (t == GgmlType::F32) {
        for (int64_t i = 0; i < n; ++i) {
            const uint32_t v = uint32_t(in[4 * i]) | uint32_t(in[4 * i + 1]) << 8 | uint32_t(in[4 * i + 2]) << 16 |
                               uint32_t(in[4 * i + 3]) << 24;
            std::memcpy(&y[i], &v, 4);
        }
        return;
    }
    if (t == GgmlType::F16) {
        for (int64_t i = 0; i < n; ++i) y[i] = get_half(in + 2 * i);
        return;
    }
    for (int64_t blk = 0; blk < n / info.block_elems; ++blk) {
        const uint8_t* b = in + blk * info.block_bytes;
        float* yb = y + blk * info.block_elems;
        switch (t) {
            case GgmlType::Q2_K: dequantize_q2_k(b, yb); break;
            case GgmlType::Q3_K: dequantize_q3_k(b, yb); break;
            case GgmlType::Q4_K: dequantize_q45_k(b, yb, 4); break;
            case GgmlType::Q5_K: dequantize_q45_k(b, yb, 5); break;
            case GgmlType::Q6_K: dequantize_q6_k(b, yb); break;
            default: dequantize_legacy(t, b, yb); break;
        }
    }
}

}  // namespace quench
