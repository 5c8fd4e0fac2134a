// ggml block encodings: sizes and type ids from ggml's headers, blocks whose bytes are worked out by hand
// from the documented layouts (docs/gguf-export.md), decoder probes that pin every field's position, and
// round-trip error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/ggml_blocks.h"
#include "model/dtype.h"
#include "support/errors.h"

using namespace quench;
using quench::test::error_of;

namespace {

std::vector<uint8_t> encode(GgmlType t, const std::vector<float>& x) {
    std::vector<uint8_t> out(ggml_row_bytes(t, int64_t(x.size())));
    ggml_quantize_row(t, x.data(), int64_t(x.size()), out.data());
    return out;
}

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& b, int64_t n) {
    std::vector<float> y(static_cast<std::size_t>(n));
    ggml_dequantize_row(t, b.data(), n, y.data());
    return y;
}

std::vector<float> gaussian_floats(std::size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(n);
    for (float& v : x) v = nd(rng);
    return x;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * (a[i] - b[i]);
    return std::sqrt(s / double(a.size()));
}

float half_at(const std::vector<uint8_t>& b, std::size_t at) { return half_to_float(uint16_t(b[at] | (b[at + 1] << 8))); }

}  // namespace

TEST(GgmlBlocks, TypeIdsAndBlockSizesMatchGgml) {
    // ggml.h's enum ggml_type and ggml-common.h's block structs (static_assert'ed sizes there).
    struct Row { GgmlType t; uint32_t id; int elems; int bytes; };
    const Row rows[] = {
        {GgmlType::F32, 0, 1, 4},      {GgmlType::F16, 1, 1, 2},      {GgmlType::Q4_0, 2, 32, 18},
        {GgmlType::Q4_1, 3, 32, 20},   {GgmlType::Q5_0, 6, 32, 22},   {GgmlType::Q5_1, 7, 32, 24},
        {GgmlType::Q8_0, 8, 32, 34},   {GgmlType::Q2_K, 10, 256, 84}, {GgmlType::Q3_K, 11, 256, 110},
        {GgmlType::Q4_K, 12, 256, 144}, {GgmlType::Q5_K, 13, 256, 176}, {GgmlType::Q6_K, 14, 256, 210},
    };
    ASSERT_EQ(ggml_types().size(), std::size(rows));
    for (const Row& r : rows) {
        const GgmlTypeInfo* info = ggml_type_info_raw(r.id);
        ASSERT_NE(info, nullptr) << r.id;
        EXPECT_EQ(info->type, r.t);
        EXPECT_EQ(info->block_elems, r.elems) << info->name;
        EXPECT_EQ(info->block_bytes, r.bytes) << info->name;
        EXPECT_EQ(ggml_row_bytes(r.t, 512), std::size_t(512 / r.elems * r.bytes)) << info->name;
        EXPECT_EQ(ggml_type_from_name(info->name), r.t);
    }
    EXPECT_EQ(ggml_type_from_name("q4_k"), GgmlType::Q4_K);
    EXPECT_FALSE(ggml_type_from_name("Q4_2").has_value());
    EXPECT_EQ(ggml_type_info_raw(4), nullptr);   // Q4_2, removed from ggml
    EXPECT_EQ(ggml_type_info_raw(15), nullptr);  // Q8_K: not a storage type here
    EXPECT_DOUBLE_EQ(ggml_type_info(GgmlType::Q4_K).bits_per_weight(), 4.5);
    EXPECT_DOUBLE_EQ(ggml_type_info(GgmlType::Q6_K).bits_per_weight(), 6.5625);
}

TEST(GgmlBlocks, RowLengthNotAMultipleNamesTypeAndBlock) {
    const std::string msg = error_of([] { ggml_row_bytes(GgmlType::Q4_K, 100); });
    EXPECT_NE(msg.find("Q4_K"), std::string::npos) << msg;
    EXPECT_NE(msg.find("100"), std::string::npos) << msg;
    EXPECT_NE(msg.find("256"), std::string::npos) << msg;
    EXPECT_NE(error_of([] { ggml_row_bytes(GgmlType::Q8_0, 48); }).find("32"), std::string::npos);
}

TEST(GgmlBlocks, Q8_0HandBlock) {
    // k_i = 127 - 8 i and d = 1/16: amax = 127 d, so d = amax / 127 is exact in fp16 (0x2C00).
    std::vector<float> x(32);
    std::vector<uint8_t> want = {0x00, 0x2C};
    for (int i = 0; i < 32; ++i) {
        const int k = 127 - 8 * i;
        x[i] = float(k) * 0.0625f;
        want.push_back(uint8_t(int8_t(k)));
    }
    const auto b = encode(GgmlType::Q8_0, x);
    EXPECT_EQ(b, want);
    EXPECT_EQ(decode(GgmlType::Q8_0, b, 32), x);
}

TEST(GgmlBlocks, Q4_0HandBlocksBothSigns) {
    // q_j = j in the low nibbles, 15 - j in the high ones; x = (q - 8) d. The largest magnitude is -4 = -8 d,
    // so d = 0.5 (0x3800). Negating x makes the extreme +4, d = -0.5 (0xB800), and the same nibbles.
    std::vector<float> x(32), neg(32);
    std::vector<uint8_t> pos_bytes = {0x00, 0x38}, neg_bytes = {0x00, 0xB8};
    for (int j = 0; j < 16; ++j) {
        x[j] = float(j - 8) * 0.5f;
        x[j + 16] = float(15 - j - 8) * 0.5f;
        pos_bytes.push_back(uint8_t(j | ((15 - j) << 4)));
        neg_bytes.push_back(uint8_t(j | ((15 - j) << 4)));
    }
    for (int i = 0; i < 32; ++i) neg[i] = -x[i];
    EXPECT_EQ(encode(GgmlType::Q4_0, x), pos_bytes);
    EXPECT_EQ(encode(GgmlType::Q4_0, neg), neg_bytes);
    EXPECT_EQ(decode(GgmlType::Q4_0, pos_bytes, 32), x);
    EXPECT_EQ(decode(GgmlType::Q4_0, neg_bytes, 32), neg);
}

TEST(GgmlBlocks, Q4_1HandBlock) {
    // x = 1 + q/4 with q_j = j (low nibbles) and 15 - j (high): m = 1 (0x3C00), d = 0.25 (0x3400).
    std::vector<float> x(32);
    std::vector<uint8_t> want = {0x00, 0x34, 0x00, 0x3C};
    for (int j = 0; j < 16; ++j) {
        x[j] = 1.0f + 0.25f * float(j);
        x[j + 16] = 1.0f + 0.25f * float(15 - j);
        want.push_back(uint8_t(j | ((15 - j) << 4)));
    }
    EXPECT_EQ(encode(GgmlType::Q4_1, x), want);
    EXPECT_EQ(decode(GgmlType::Q4_1, want, 32), x);
}

TEST(GgmlBlocks, Q5_0AndQ5_1HandBlocksPlaceTheFifthBit) {
    // Q5_0: q_j = j, q_{16+j} = 16 + j, x = (q - 16) / 2; extreme -8 gives d = 0.5. The fifth bits are set
    // for elements 16..31 only: qh = 0xFFFF0000, little-endian.
    std::vector<float> x0(32);
    std::vector<uint8_t> want0 = {0x00, 0x38, 0x00, 0x00, 0xFF, 0xFF};
    for (int j = 0; j < 16; ++j) {
        x0[j] = float(j - 16) * 0.5f;
        x0[j + 16] = float(j) * 0.5f;
        want0.push_back(uint8_t(j | (j << 4)));
    }
    EXPECT_EQ(encode(GgmlType::Q5_0, x0), want0);
    EXPECT_EQ(decode(GgmlType::Q5_0, want0, 32), x0);
    // Q5_1: q_j = 16 + j, q_{16+j} = j, x = -2 + q/8: m = -2 (0xC000), d = 0.125 (0x3000), qh = 0x0000FFFF.
    std::vector<float> x1(32);
    std::vector<uint8_t> want1 = {0x00, 0x30, 0x00, 0xC0, 0xFF, 0xFF, 0x00, 0x00};
    for (int j = 0; j < 16; ++j) {
        x1[j] = -2.0f + 0.125f * float(16 + j);
        x1[j + 16] = -2.0f + 0.125f * float(j);
        want1.push_back(uint8_t(j | (j << 4)));
    }
    EXPECT_EQ(encode(GgmlType::Q5_1, x1), want1);
    EXPECT_EQ(decode(GgmlType::Q5_1, want1, 32), x1);
}

// Decoder probes: blocks assembled byte by byte from the ggml-common.h layouts, with the value of chosen
// elements worked out by hand from ggml's dequantize_row_* loops (see the comments).
TEST(GgmlBlocks, Q2_KDecoderProbe) {
    std::vector<uint8_t> b(84, 0);
    // scales[j] = sc | m << 4 with sc_j = j % 15 + 1, m_j = 15 - j.
    const uint8_t scales[16] = {0xF1, 0xE2, 0xD3, 0xC4, 0xB5, 0xA6, 0x97, 0x88,
                                0x79, 0x6A, 0x5B, 0x4C, 0x3D, 0x2E, 0x1F, 0x01};
    std::memcpy(b.data(), scales, 16);
    b[16 + 0] = 0xE4;   // qs[0]: elements 0, 32, 64, 96 get q = 0, 1, 2, 3
    b[16 + 63] = 0xC0;  // qs[63]: element 159 (bits 0-1) q = 0, element 255 (bits 6-7) q = 3
    b[80] = 0x00, b[81] = 0x3C;  // d = 1
    b[82] = 0x00, b[83] = 0x34;  // dmin = 0.25
    const auto y = decode(GgmlType::Q2_K, b, 256);
    EXPECT_EQ(y[0], -3.75f);   // sub-block 0: 1*0 - 0.25*15
    EXPECT_EQ(y[16], -3.5f);   // sub-block 1: 2*0 - 0.25*14
    EXPECT_EQ(y[32], -0.25f);  // sub-block 2: 3*1 - 0.25*13
    EXPECT_EQ(y[64], 7.25f);   // sub-block 4: 5*2 - 0.25*11
    EXPECT_EQ(y[96], 18.75f);  // sub-block 6: 7*3 - 0.25*9
    EXPECT_EQ(y[159], -1.5f);  // sub-block 9: 10*0 - 0.25*6
    EXPECT_EQ(y[255], 3.0f);   // sub-block 15: 1*3 - 0
}

TEST(GgmlBlocks, Q3_KDecoderProbe) {
    std::vector<uint8_t> b(110, 0);
    uint8_t* hmask = b.data();
    uint8_t* qs = b.data() + 32;
    uint8_t* sc = b.data() + 96;
    // 6-bit scales v_j (sc = v - 32): low nibbles in bytes 0-7 (j < 8 low half, j >= 8 high half), top two
    // bits in byte 8 + j%4 at bit 2*(j/4). v0 = 1 | 2<<4 = 33, v8 = 2, v4 = 16, v12 = 32, v7 = 3, v15 = 63,
    // v3 = 32, all others 0 (sc = -32).
    sc[0] = 0x21;
    sc[7] = 0xF3;
    sc[8] = 0x86;
    sc[11] = 0xC2;
    b[108] = 0x00, b[109] = 0x38;  // d = 0.5
    // q = low2 - (high bit ? 0 : 4). Element 0: low2 3, hmask[0] bit 0 -> 3; element 32: qs[0] bits 2-3 = 1,
    // no high bit -> -3; element 112: qs[16] bits 6-7 = 2, hmask[16] bit 3 -> 2; element 128: qs[32] bits
    // 0-1 = 2, hmask[0] bit 4 -> 2; element 255: qs[63] bits 6-7 = 1, hmask[31] bit 7 -> 1.
    qs[0] = 0x07;
    hmask[0] = 0x11;
    qs[16] = 0x80;
    hmask[16] = 0x08;
    qs[32] = 0x02;
    qs[63] = 0x40;
    hmask[31] = 0x80;
    const auto y = decode(GgmlType::Q3_K, b, 256);
    EXPECT_EQ(y[0], 1.5f);     // 0.5 * 1 * 3
    EXPECT_EQ(y[1], -2.0f);    // 0.5 * 1 * -4
    EXPECT_EQ(y[16], 64.0f);   // sub-block 1: 0.5 * -32 * -4
    EXPECT_EQ(y[32], 48.0f);   // sub-block 2: 0.5 * -32 * -3
    EXPECT_EQ(y[48], 0.0f);    // sub-block 3: sc 0
    EXPECT_EQ(y[64], 32.0f);   // sub-block 4: 0.5 * -16 * -4
    EXPECT_EQ(y[112], -29.0f); // sub-block 7: 0.5 * -29 * 2
    EXPECT_EQ(y[128], -30.0f); // sub-block 8: 0.5 * -30 * 2
    EXPECT_EQ(y[255], 15.5f);  // sub-block 15: 0.5 * 31 * 1
}

namespace {
// d = 0.5, dmin = 0.25; sc = {1, 2, 3, 4, 63, 5, 6, 40}, m = {0, 10, 20, 30, 1, 47, 16, 2} packed into the
// 12-byte field by hand: bytes 0-3 = sc[0..3] | (sc[4..7] >> 4) << 6, bytes 4-7 = m[0..3] | (m[4..7] >> 4)
// << 6, bytes 8-11 = (sc[4..7] & 15) | (m[4..7] & 15) << 4.
void put_k4_header(std::vector<uint8_t>& b) {
    const uint8_t head[16] = {0x00, 0x38, 0x00, 0x34, 0xC1, 0x02, 0x03, 0x84,
                              0x00, 0x8A, 0x54, 0x1E, 0x1F, 0xF5, 0x06, 0x28};
    std::memcpy(b.data(), head, 16);
}
// qs bytes (offset given): element 0 q=1, 32 q=2 (qs[0]); 64 q=0, 96 q=15 (qs[32]); 128 q=10, 160 q=3
// (qs[64]); 223 q=12, 255 q=9 (qs[127]).
void put_k4_codes(std::vector<uint8_t>& b, std::size_t at) {
    b[at + 0] = 0x21;
    b[at + 32] = 0xF0;
    b[at + 64] = 0x3A;
    b[at + 127] = 0x9C;
}
}  // namespace

TEST(GgmlBlocks, Q4_KDecoderProbe) {
    std::vector<uint8_t> b(144, 0);
    put_k4_header(b);
    put_k4_codes(b, 16);
    const auto y = decode(GgmlType::Q4_K, b, 256);
    EXPECT_EQ(y[0], 0.5f);      // 0.5*1*1 - 0.25*0
    EXPECT_EQ(y[1], 0.0f);
    EXPECT_EQ(y[32], -0.5f);    // 0.5*2*2 - 0.25*10
    EXPECT_EQ(y[64], -5.0f);    // 0.5*3*0 - 0.25*20
    EXPECT_EQ(y[96], 22.5f);    // 0.5*4*15 - 0.25*30
    EXPECT_EQ(y[128], 314.75f); // 0.5*63*10 - 0.25*1
    EXPECT_EQ(y[160], -4.25f);  // 0.5*5*3 - 0.25*47
    EXPECT_EQ(y[223], 32.0f);   // 0.5*6*12 - 0.25*16
    EXPECT_EQ(y[255], 179.5f);  // 0.5*40*9 - 0.25*2
}

TEST(GgmlBlocks, Q5_KDecoderProbe) {
    std::vector<uint8_t> b(176, 0);
    put_k4_header(b);
    put_k4_codes(b, 48);
    b[16 + 0] = 0x06;   // qh[0]: bit 1 -> element 32, bit 2 -> element 64 get +16
    b[16 + 31] = 0x80;  // qh[31]: bit 7 -> element 255
    const auto y = decode(GgmlType::Q5_K, b, 256);
    EXPECT_EQ(y[0], 0.5f);
    EXPECT_EQ(y[32], 15.5f);    // 0.5*2*18 - 2.5
    EXPECT_EQ(y[64], 19.0f);    // 0.5*3*16 - 5
    EXPECT_EQ(y[96], 22.5f);
    EXPECT_EQ(y[128], 314.75f);
    EXPECT_EQ(y[223], 32.0f);
    EXPECT_EQ(y[255], 499.5f);  // 0.5*40*25 - 0.5
}

TEST(GgmlBlocks, Q6_KDecoderProbe) {
    std::vector<uint8_t> b(210, 0);
    const int8_t scales[16] = {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -128};
    std::memcpy(b.data() + 192, scales, 16);
    b[208] = 0x00, b[209] = 0x34;  // d = 0.25
    b[0] = 0x5F;    // ql[0]: element 0 low 15, element 64 low 5
    b[128] = 0xE6;  // qh[0]: element 0 high 2, 32 high 1, 64 high 2, 96 high 3
    b[127] = 0xA0;  // ql[127]: element 191 low 0, element 255 low 10
    b[191] = 0x40;  // qh[63]: element 255 high 1
    const auto y = decode(GgmlType::Q6_K, b, 256);
    EXPECT_EQ(y[0], 3.75f);     // 0.25 * 1 * (47 - 32)
    EXPECT_EQ(y[1], -8.0f);     // 0.25 * 1 * -32
    EXPECT_EQ(y[32], -8.0f);    // 0.25 * 2 * (16 - 32)
    EXPECT_EQ(y[64], 3.75f);    // 0.25 * 3 * (37 - 32)
    EXPECT_EQ(y[96], 16.0f);    // 0.25 * 4 * (48 - 32)
    EXPECT_EQ(y[191], 48.0f);   // sub-block 11: 0.25 * -6 * -32
    EXPECT_EQ(y[255], 192.0f);  // sub-block 15: 0.25 * -128 * (26 - 32)
}

TEST(GgmlBlocks, EncoderWritesExactlyTheRowAndBlocksAreIndependent) {
    const auto x = gaussian_floats(512, 7);
    for (const GgmlTypeInfo& info : ggml_types()) {
        const std::size_t n = ggml_row_bytes(info.type, 512);
        std::vector<uint8_t> buf(n + 16, 0xA5);
        ggml_quantize_row(info.type, x.data(), 512, buf.data());
        for (std::size_t i = n; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0xA5) << info.name << " wrote past its row";
        // Encoding the halves separately gives the same bytes: no state crosses block boundaries.
        const std::vector<float> a(x.begin(), x.begin() + 256), c(x.begin() + 256, x.end());
        auto halves = encode(info.type, a);
        const auto second = encode(info.type, c);
        halves.insert(halves.end(), second.begin(), second.end());
        EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + std::ptrdiff_t(n)), halves) << info.name;
    }
}

TEST(GgmlBlocks, ZeroAndConstantRowsDecodeExactly) {
    for (const GgmlTypeInfo& info : ggml_types()) {
        const std::vector<float> zero(256, 0.0f);
        EXPECT_EQ(decode(info.type, encode(info.type, zero), 256), zero) << info.name;
        // A constant that fp16 holds exactly is one grid level (or the offset) of every type, except where the
        // scale is c / 127 (Q8_0) or c / mmax (the dmin of Q2_K/Q4_K/Q5_K), rounded to fp16: exact to 2^-11.
        const std::vector<float> c(256, -0.75f);
        const auto y = decode(info.type, encode(info.type, c), 256);
        const bool via_dmin = info.type == GgmlType::Q8_0 || info.type == GgmlType::Q2_K || info.type == GgmlType::Q4_K || info.type == GgmlType::Q5_K;
        for (float v : y) ASSERT_NEAR(v, -0.75f, via_dmin ? 0.75f * std::ldexp(1.0f, -11) : 0.0f) << info.name;
    }
}

TEST(GgmlBlocks, F32IsExactAndF16RoundsToNearest) {
    const auto x = gaussian_floats(256, 1);
    EXPECT_EQ(decode(GgmlType::F32, encode(GgmlType::F32, x), 256), x);
    const auto y = decode(GgmlType::F16, encode(GgmlType::F16, x), 256);
    for (int i = 0; i < 256; ++i) EXPECT_LE(std::fabs(x[i] - y[i]), std::fabs(x[i]) * std::ldexp(1.0f, -11) + 1e-7f);
    // 1 + 2^-11 is halfway between 1 and the next half; ties go to even (1.0 = 0x3C00).
    const std::vector<float> tie = {1.0f + std::ldexp(1.0f, -11)};
    EXPECT_EQ(encode(GgmlType::F16, tie), (std::vector<uint8_t>{0x00, 0x3C}));
}

TEST(GgmlBlocks, LegacyRoundTripBounds) {
    const auto x = gaussian_floats(32 * 256, 2);
    const int64_t n = int64_t(x.size());
    // Q8_0: every element within half a step of the stored fp16 scale.
    {
        const auto b = encode(GgmlType::Q8_0, x);
        const auto y = decode(GgmlType::Q8_0, b, n);
        for (int64_t blk = 0; blk < n / 32; ++blk) {
            const float d = half_at(b, std::size_t(blk) * 34);
            for (int i = 0; i < 32; ++i)
                ASSERT_LE(std::fabs(x[blk * 32 + i] - y[blk * 32 + i]), d / 2 * (1 + 1e-6f)) << "block " << blk;
        }
    }
    // Q4_1 / Q5_1: the step is rounded up and the minimum down, so half a step still bounds every element.
    for (auto [t, bytes] : {std::pair{GgmlType::Q4_1, 20}, std::pair{GgmlType::Q5_1, 24}}) {
        const auto b = encode(t, x);
        const auto y = decode(t, b, n);
        for (int64_t blk = 0; blk < n / 32; ++blk) {
            const float d = half_at(b, std::size_t(blk * bytes));
            for (int i = 0; i < 32; ++i)
                ASSERT_LE(std::fabs(x[blk * 32 + i] - y[blk * 32 + i]), d / 2 * (1 + 1e-5f) + 1e-6f)
                    << ggml_type_name(t) << " block " << blk;
        }
    }
    // Q4_0 / Q5_0: the grid is [-8, 7] d (Q5_0: [-16, 15] d) with the extreme mapped to -8 d, so a value
    // of the other sign can miss by up to one step; inside the grid, by half a step.
    for (auto [t, bytes, half] : {std::tuple{GgmlType::Q4_0, 18, 8}, std::tuple{GgmlType::Q5_0, 22, 16}}) {
        const auto b = encode(t, x);
        const auto y = decode(t, b, n);
        for (int64_t blk = 0; blk < n / 32; ++blk) {
            const float d = std::fabs(half_at(b, std::size_t(blk * bytes)));
            for (int i = 0; i < 32; ++i) {
                const float xi = x[blk * 32 + i], err = std::fabs(xi - y[blk * 32 + i]);
                ASSERT_LE(err, d * 1.002f) << ggml_type_name(t);
                if (std::fabs(xi) <= float(half - 1) * d) {
                    ASSERT_LE(err, d / 2 * (1 + 1e-5f)) << ggml_type_name(t);
                }
            }
        }
    }
}

TEST(GgmlBlocks, KQuantRoundTripErrorsAreOrderedAndBounded) {
    // Relative RMSE on unit Gaussian weights, 64 super-blocks. Uniform-grid theory (step / sqrt(12) with a
    // step of about range / levels) puts Q6_K near 1%, Q4_K near 5-7%, Q2_K near 30%; the bounds below leave
    // room for the scale quantization. Measured values are in docs/gguf-export.md.
    const auto x = gaussian_floats(256 * 64, 3);
    const int64_t n = int64_t(x.size());
    const GgmlType order[] = {GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_K, GgmlType::Q3_K, GgmlType::Q2_K};
    const double bound[] = {0.02, 0.04, 0.08, 0.17, 0.36};
    double prev = 0;
    for (int i = 0; i < 5; ++i) {
        const double e = rmse(x, decode(order[i], encode(order[i], x), n));
        std::printf("  %s relative RMSE %.4f\n", ggml_type_name(order[i]), e);
        EXPECT_LT(e, bound[i]) << ggml_type_name(order[i]);
        EXPECT_GT(e, prev) << ggml_type_name(order[i]) << " should lose more than the type before it";
        prev = e;
    }
    // The legacy types, same data: Q8_0 < Q5_1 < Q5_0 < Q4_1 < Q4_0.
    prev = 0;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q5_1, GgmlType::Q5_0, GgmlType::Q4_1, GgmlType::Q4_0}) {
        const double e = rmse(x, decode(t, encode(t, x), n));
        std::printf("  %s relative RMSE %.4f\n", ggml_type_name(t), e);
        EXPECT_GT(e, prev) << ggml_type_name(t);
        prev = e;
    }
}

TEST(GgmlBlocks, KQuantWorstElementErrorIsAboutOneStep) {
    // Per element, the error relative to its sub-block's largest magnitude stays near one grid step of
    // that sub-block (2 * absmax / (levels - 1)); sub-block sizes are 16 (Q2_K, Q3_K, Q6_K) and 32.
    const auto x = gaussian_floats(256 * 64, 4);
    struct Case { GgmlType t; int sub; int levels; };
    for (const Case& c : {Case{GgmlType::Q2_K, 16, 4}, Case{GgmlType::Q3_K, 16, 8}, Case{GgmlType::Q4_K, 32, 16},
                          Case{GgmlType::Q5_K, 32, 32}, Case{GgmlType::Q6_K, 16, 64}}) {
        const auto y = decode(c.t, encode(c.t, x), int64_t(x.size()));
        double worst = 0;
        for (std::size_t s = 0; s < x.size() / std::size_t(c.sub); ++s) {
            float amax = 0;
            for (int i = 0; i < c.sub; ++i) amax = std::max(amax, std::fabs(x[s * c.sub + i]));
            const double step = 2.0 * amax / (c.levels - 1);
            for (int i = 0; i < c.sub; ++i)
                worst = std::max(worst, std::fabs(double(x[s * c.sub + i]) - y[s * c.sub + i]) / step);
        }
        std::printf("  %s worst error %.3f steps\n", ggml_type_name(c.t), worst);
        EXPECT_LT(worst, 1.0) << ggml_type_name(c.t);
    }
}
