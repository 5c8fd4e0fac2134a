// The safetensors reader and writer, plus the dtype table and scalar half/bf16 conversions they rely on.
// Every malformed-file case is its own test so a regression names exactly which check broke.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/error.h"
#include "model/safetensors_writer.h"
#include "model/safetensors.h"
#include "support/files.h"
#include "support/test_paths.h"

using namespace quench;
using quench::test::read_bytes;
using quench::test::ScratchDir;
using quench::test::write_bytes;

namespace {

// 8-byte little-endian header length, header text, data: a safetensors file built by hand.
std::string raw_file(const std::string& header, const std::string& data = "", uint64_t claimed_len = UINT64_MAX) {
    const uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = char(n >> (8 * i));
    return out + header + data;
}

// The quench::Error message from opening path, or "" (with a test failure) when it opened fine.
std::string open_error(const std::string& path) {
    try {
        SafetensorsFile f(path);
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << path << " opened without error";
    return "";
}

::testing::AssertionResult mentions_one_line(const std::string& msg, std::initializer_list<std::string> parts) {
    if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "multi-line message: " << msg;
    for (const auto& p : parts)
        if (msg.find(p) == std::string::npos)
            return ::testing::AssertionFailure() << "'" << msg << "' does not mention '" << p << "'";
    return ::testing::AssertionSuccess();
}

// Writes header + data to a scratch file and returns the error from opening it.
std::string error_for(const ScratchDir& dir, const std::string& header, const std::string& data) {
    const std::string path = dir.file("bad.safetensors");
    write_bytes(path, raw_file(header, data));
    return open_error(path);
}

float f32_of(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

}  // namespace

// ---- dtype table and scalar conversions ----

TEST(DType, SizesAndNamesRoundTrip) {
    EXPECT_EQ(dtype_size(DType::F32), 4u);
    EXPECT_EQ(dtype_size(DType::BF16), 2u);
    EXPECT_EQ(dtype_size(DType::I64), 8u);
    EXPECT_EQ(dtype_size(DType::BOOL), 1u);
    for (const char* name : {"F32", "F16", "BF16", "F64", "I8", "U8", "I16", "I32", "I64", "BOOL"}) {
        const auto dt = dtype_from_name(name);
        ASSERT_TRUE(dt) << name;
        EXPECT_STREQ(dtype_name(*dt), name);
    }
    EXPECT_FALSE(dtype_from_name("F8_E4M3"));
    EXPECT_FALSE(dtype_from_name("f32"));
}

TEST(DType, HalfKnownValues) {
    EXPECT_EQ(float_to_half(1.0f), 0x3C00);
    EXPECT_EQ(float_to_half(-2.0f), 0xC000);
    EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
    EXPECT_EQ(float_to_half(-0.0f), 0x8000);
    EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
    EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
    EXPECT_EQ(float_to_half(1023 * std::ldexp(1.0f, -24)), 0x03FF);
    EXPECT_EQ(float_to_half(INFINITY), 0x7C00);
    EXPECT_EQ(float_to_half(-INFINITY), 0xFC00);
    EXPECT_EQ(half_to_float(0x3C00), 1.0f);
    EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
    EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(half_to_float(0x8000), 0.0f);
    EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
    EXPECT_EQ(half_to_float(0xFC00), -INFINITY);
    EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
}

TEST(DType, HalfRoundsToNearestEven) {
    EXPECT_EQ(float_to_half(65519.0f), 0x7BFF);                        // below the halfway point
    EXPECT_EQ(float_to_half(65520.0f), 0x7C00);                        // tie goes to even: Inf
    EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3C00);    // tie, 0x3C00 is even
    EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, rounds up to even
    EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);           // subnormal tie to even zero
    EXPECT_EQ(float_to_half(1.5f * std::ldexp(1.0f, -25)), 0x0001);
    EXPECT_EQ(float_to_half(3 * std::ldexp(1.0f, -25)), 0x0002);       // 1.5 units ties up to 2
    EXPECT_EQ(float_to_half(std::ldexp(1.0f, -30)), 0x0000);
}

TEST(DType, HalfNaNStaysNaN) {
    // A payload only in the low float bits would vanish when truncated and read as Inf.
    const uint16_t h = float_to_half(f32_of(0x7F800001));
    EXPECT_EQ(h & 0x7C00, 0x7C00);
    EXPECT_NE(h & 0x3FF, 0);
    EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
}

TEST(DType, HalfExhaustiveRoundTrip) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;  // NaN payloads are only required to stay NaN
        ASSERT_EQ(float_to_half(half_to_float(uint16_t(h))), h) << std::hex << h;
        ASSERT_EQ(half_to_float(uint16_t(h)), static_cast<float>(c10::Half(uint16_t(h), c10::Half::from_bits())))
            << std::hex << h;
    }
}

TEST(DType, HalfMatchesTorchOnEveryRelevantFloat) {
    // Sweep the float bit patterns that land in or near the half range; torch's conversion is RNE too.
    for (uint32_t bits = 0x32000000; bits < 0x48000000; bits += 7) {
        for (uint32_t sign : {0u, 0x80000000u}) {
            const float f = f32_of(bits | sign);
            ASSERT_EQ(float_to_half(f), c10::Half(f).x) << std::hex << (bits | sign);
        }
    }
}

TEST(DType, BF16KnownValuesAndRounding) {
    EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
    EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
    EXPECT_EQ(float_to_bf16(f32_of(0x3F808000)), 0x3F80);  // tie, even stays
    EXPECT_EQ(float_to_bf16(f32_of(0x3F818000)), 0x3F82);  // tie, odd rounds up
    EXPECT_EQ(float_to_bf16(f32_of(0x3F808001)), 0x3F81);  // above the tie
    EXPECT_EQ(float_to_bf16(INFINITY), 0x7F80);
    EXPECT_EQ(float_to_bf16(f32_of(0x7F7FFFFF)), 0x7F80);  // max float rounds to Inf
    EXPECT_EQ(float_to_bf16(f32_of(0x00000001)), 0x0000);  // float subnormal
    EXPECT_EQ(float_to_bf16(f32_of(0x00018000)), 0x0002);  // bf16 subnormal tie
    EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f32_of(0x7F800001)))));  // naive rounding gives Inf
    for (uint32_t b = 0; b < 0x10000; ++b) {
        if ((b & 0x7F80) == 0x7F80 && (b & 0x7F)) continue;
        ASSERT_EQ(float_to_bf16(bf16_to_float(uint16_t(b))), b) << std::hex << b;
    }
    std::mt19937 rng(7);
    for (int i = 0; i < 1000000; ++i) {
        const float f = f32_of(rng());
        if (std::isnan(f)) continue;
        ASSERT_EQ(float_to_bf16(f), c10::BFloat16(f).x) << f;
    }
}

// ---- malformed files: each names the file and the offending field ----

TEST(SafetensorsBad, EmptyFile) {
    ScratchDir dir;
    const std::string path = dir.file("empty.safetensors");
    write_bytes(path, "");
    EXPECT_TRUE(mentions_one_line(open_error(path), {path, "empty"}));
}

TEST(SafetensorsBad, ShorterThanLengthPrefix) {
    ScratchDir dir;
    const std::string path = dir.file("short.safetensors");
    write_bytes(path, std::string("\x05\0\0", 3));
    EXPECT_TRUE(mentions_one_line(open_error(path), {path, "3 bytes", "header length"}));
}

TEST(SafetensorsBad, HeaderLengthBeyondFile) {
    ScratchDir dir;
    const std::string path = dir.file("long.safetensors");
    write_bytes(path, raw_file("{}", "", 1000));
    EXPECT_TRUE(mentions_one_line(open_error(path), {path, "header length 1000 exceeds file size (10 bytes)"}));
}

TEST(SafetensorsBad, HeaderNotJson) {
    ScratchDir dir;
    EXPECT_TRUE(mentions_one_line(error_for(dir, "{\"a\": nope}", ""),
                                  {dir.file("bad.safetensors"), "not valid JSON", "parse error"}));
}

TEST(SafetensorsBad, HeaderNotObject) {
    ScratchDir dir;
    EXPECT_TRUE(
        mentions_one_line(error_for(dir, "[1, 2]", ""), {dir.file("bad.safetensors"), "not a JSON object", "array"}));
}

TEST(SafetensorsBad, OffsetsOutOfRange) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, 'x'));
    EXPECT_TRUE(mentions_one_line(
        msg, {dir.file("bad.safetensors"), "tensor 'w'", "data_offsets [0, 16) exceed the data section (8 bytes)"}));
}

TEST(SafetensorsBad, OffsetsReversed) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", std::string(8, 'x'));
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "data_offsets [4, 2)"}));
}

TEST(SafetensorsBad, OffsetsNotTwoIntegers) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4,8]}})", std::string(8, 'x'));
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "data_offsets"}));
}

TEST(SafetensorsBad, OverlappingOffsets) {
    ScratchDir dir;
    const std::string msg = error_for(dir,
        R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
        std::string(24, 'x'));
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'b'", "overlap tensor 'a'", "[8, 24)"}));
}

TEST(SafetensorsBad, ShapeSizeMismatch) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})", std::string(8, 'x'));
    EXPECT_TRUE(mentions_one_line(
        msg, {dir.file("bad.safetensors"), "tensor 'w'", "shape [2, 3]", "F16", "needs 12 bytes", "span 8"}));
}

TEST(SafetensorsBad, ShapeOverflowIsAMismatch) {
    ScratchDir dir;
    const std::string msg = error_for(
        dir, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "more than 2^64"}));
}

TEST(SafetensorsBad, UnknownDtypeF8) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "abcd");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "unsupported dtype 'F8_E4M3'"}));
}

TEST(SafetensorsBad, UnknownDtypeQ4) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,2]}})", "ab");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "unsupported dtype 'Q4'"}));
}

TEST(SafetensorsBad, MissingDtype) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"shape":[4],"data_offsets":[0,4]}})", "abcd");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "missing dtype"}));
}

TEST(SafetensorsBad, NegativeShape) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}})", "abcd");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "negative dimension -4"}));
}

TEST(SafetensorsBad, NonIntegerShape) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"w":{"dtype":"U8","shape":[2.5],"data_offsets":[0,4]}})", "abcd");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "shape", "non-integer"}));
}

TEST(SafetensorsBad, MetadataNotStrings) {
    ScratchDir dir;
    const std::string msg = error_for(dir, R"({"__metadata__":{"format":1}})", "");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "__metadata__", "'format'"}));
}

TEST(SafetensorsBad, DuplicateTensorName) {
    ScratchDir dir;
    const std::string msg = error_for(dir,
        R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
        "abcd");
    EXPECT_TRUE(mentions_one_line(msg, {dir.file("bad.safetensors"), "tensor 'w'", "twice"}));
}

// A valid two-tensor file cut short, as an interrupted download would leave it.
class SafetensorsTruncated : public ::testing::Test {
protected:
    void SetUp() override {
        const std::vector<float> a(6, 1.5f), b(10, -2.0f);
        SafetensorsWriter w;
        w.add("a", DType::F32, {2, 3}, a.data(), a.size() * 4);
        w.add("b", DType::F32, {10}, b.data(), b.size() * 4);
        w.write(dir.file("full.safetensors"));
        full = read_bytes(dir.file("full.safetensors"));
        std::memcpy(&header_len, full.data(), 8);
    }
    ScratchDir dir;
    std::string full;
    uint64_t header_len = 0;
};

TEST_F(SafetensorsTruncated, InTheData) {
    const std::string path = dir.file("cut.safetensors");
    write_bytes(path, full.substr(0, 8 + header_len + 40));
    EXPECT_TRUE(mentions_one_line(open_error(path),
                                  {path, "tensor 'b'", "data_offsets [24, 64) exceed the data section (40 bytes)"}));
}

TEST_F(SafetensorsTruncated, InTheHeader) {
    const std::string path = dir.file("cut.safetensors");
    write_bytes(path, full.substr(0, 8 + header_len / 2));
    EXPECT_TRUE(mentions_one_line(open_error(path),
                                  {path, "header length " + std::to_string(header_len) + " exceeds file size"}));
}

// ---- valid files ----

TEST(Safetensors, TensorsSortedByOffsetWithMetadata) {
    ScratchDir dir;
    const std::string path = dir.file("ok.safetensors");
    // Keys sort as a, s, z but the data order is z, a; s is a scalar, e is empty.
    write_bytes(path, raw_file(R"({"__metadata__":{"format":"pt"},)"
                               R"("a":{"dtype":"I16","shape":[2],"data_offsets":[4,8]},)"
                               R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]},)"
                               R"("s":{"dtype":"F64","shape":[],"data_offsets":[8,16]},)"
                               R"("z":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}})",
                               std::string("\x01\x02\x03\x04\x05\x00\x06\x00", 8) + std::string(8, '\0')));
    SafetensorsFile f(path);
    ASSERT_EQ(f.tensors().size(), 4u);
    EXPECT_EQ(f.tensors()[0].name, "z");
    EXPECT_EQ(f.tensors()[1].name, "a");
    EXPECT_EQ(f.metadata().at("format"), "pt");
    const TensorInfo* a = f.find("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->dtype, DType::I16);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{2}));
    int16_t v[2];
    std::memcpy(v, f.data(*a), 4);
    EXPECT_EQ(v[0], 5);
    EXPECT_EQ(v[1], 6);
    EXPECT_EQ(f.find("s")->numel(), 1);
    EXPECT_EQ(f.find("e")->numel(), 0);
    EXPECT_EQ(f.find("missing"), nullptr);
    EXPECT_EQ(f.file_size(), read_bytes(path).size());
}

TEST(Safetensors, WriterRoundTripIsByteExact) {
    ScratchDir dir;
    std::vector<float> f32(12);
    std::vector<uint16_t> f16(6), bf16(5);
    std::vector<int32_t> i32{-1, 0, 7, INT32_MAX, INT32_MIN, 42};
    for (std::size_t i = 0; i < f32.size(); ++i) f32[i] = 0.1f * float(i) - 0.5f;
    for (std::size_t i = 0; i < f16.size(); ++i) f16[i] = float_to_half(float(i) * 0.25f);
    for (std::size_t i = 0; i < bf16.size(); ++i) bf16[i] = float_to_bf16(-float(i) * 3.0f);
    SafetensorsWriter w;
    w.add("f32", DType::F32, {3, 4}, f32.data(), f32.size() * 4);
    w.add("f16", DType::F16, {2, 3}, f16.data(), f16.size() * 2);
    w.add("bf16", DType::BF16, {5}, bf16.data(), bf16.size() * 2);
    w.add("i32", DType::I32, {6}, i32.data(), i32.size() * 4);
    w.set_metadata("format", "pt");
    const std::string path = dir.file("rt.safetensors");
    w.write(path);

    const std::string bytes = read_bytes(path);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    EXPECT_EQ(header_len % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + header_len + 48 + 12 + 10 + 24);

    SafetensorsFile f(path);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    const auto check = [&](const char* name, DType dt, std::vector<int64_t> shape, const void* data, std::size_t n) {
        const TensorInfo* t = f.find(name);
        ASSERT_NE(t, nullptr) << name;
        EXPECT_EQ(t->dtype, dt) << name;
        EXPECT_EQ(t->shape, shape) << name;
        ASSERT_EQ(t->nbytes(), n) << name;
        EXPECT_EQ(std::memcmp(f.data(*t), data, n), 0) << name;
    };
    check("f32", DType::F32, {3, 4}, f32.data(), 48);
    check("f16", DType::F16, {2, 3}, f16.data(), 12);
    check("bf16", DType::BF16, {5}, bf16.data(), 10);
    check("i32", DType::I32, {6}, i32.data(), 24);
    EXPECT_EQ(f.tensors()[0].name, "f32");  // written in the order added
}

TEST(SafetensorsWriter, RejectsSizeMismatchAndDuplicates) {
    const float data[4] = {};
    SafetensorsWriter w;
    EXPECT_THROW(w.add("w", DType::F32, {3}, data, 16), Error);
    EXPECT_THROW(w.add("w", DType::F32, {-4}, data, 16), Error);
    w.add("w", DType::F32, {4}, data, 16);
    try {
        w.add("w", DType::F32, {2, 2}, data, 16);
        ADD_FAILURE() << "duplicate accepted";
    } catch (const Error& e) {
        EXPECT_TRUE(mentions_one_line(e.what(), {"tensor 'w'", "twice"}));
    }
}

TEST(SafetensorsWriter, MissingDirectoryNamesPath) {
    const float data[1] = {};
    SafetensorsWriter w;
    w.add("w", DType::F32, {1}, data, 4);
    const std::string path = "/nonexistent-quench-dir/out.safetensors";
    try {
        w.write(path);
        ADD_FAILURE() << "write succeeded";
    } catch (const Error& e) {
        EXPECT_TRUE(mentions_one_line(e.what(), {path}));
    }
}

TEST(MappedFile, WritesNeverReachTheFile) {
    ScratchDir dir;
    const std::string path = dir.file("data.bin");
    write_bytes(path, "original");
    {
        MappedFile m(path);
        ASSERT_EQ(m.size(), 8u);
        const_cast<uint8_t*>(m.data())[0] = 'X';  // copy-on-write page
        EXPECT_EQ(m.data()[0], 'X');
    }
    EXPECT_EQ(read_bytes(path), "original");
}

TEST(MappedFile, MissingFileNamesPath) {
    const std::string path = "/nonexistent-quench-dir/x.safetensors";
    EXPECT_TRUE(mentions_one_line(open_error(path), {path, "No such file"}));
}
