#include "model/dtype.h"

#include <cstring>

namespace quench {

namespace {

struct DTypeRow { DType dtype; const char* name; std::size_t size; };

constexpr DTypeRow kDTypes[] = {
    {DType::F32, "F32", 4},  {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I8, "I8", 1},    {DType::U8, "U8", 1},   {DType::I16, "I16", 2},   {DType::I32, "I32", 4},
    {DType::I64, "I64", 8},  {DType::BOOL, "BOOL", 1},
};

const DTypeRow* row(DType dt) {
    for (const auto& r : kDTypes)
        if (r.dtype == dt) return &r;
    return nullptr;
}

uint32_t bits_of(float f) {
    uint32_t x;
    std::memcpy(&x, &f, sizeof x);
    return x;
}

float float_of(uint32_t x) {
    float f;
    std::memcpy(&f, &x, sizeof f);
    return f;
}

// Shifts mant right by `shift` bits, rounding to nearest with ties to even.
uint32_t shift_rne(uint32_t mant, unsigned shift) {
    const uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    return (rem > halfway || (rem == halfway && (q & 1))) ? q + 1 : q;
}

}  // namespace

std::size_t dtype_size(DType dt) {
    const DTypeRow* r = row(dt);
    return r ? r->size : 0;
}

const char* dtype_name(DType dt) {
    const DTypeRow* r = row(dt);
    return r ? r->name : "?";
}

std::optional<DType> dtype_from_name(const std::string& name) {
    for (const auto& r : kDTypes)
        if (name == r.name) return r.dtype;
    return std::nullopt;
}

float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1F;
    const uint32_t mant = h & 0x3FF;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24 is exact in fp32.
        const float mag = float(mant) * (1.0f / 16777216.0f);
        return float_of(bits_of(mag) | sign);
    }
    if (exp == 31) return float_of(sign | 0x7F800000u | (mant << 13));  // Inf / NaN keep their payload
    return float_of(sign | ((exp + 112) << 23) | (mant << 13));          // rebias 15 -> 127
}

uint16_t float_to_half(float f) {
    const uint32_t x = bits_of(f);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000);
    const uint32_t absx = x & 0x7FFFFFFF;
    if (absx > 0x7F800000) {
        // NaN: keep the top payload bits and force the quiet bit so a payload living only in the low
        // bits cannot turn into Inf.
        return uint16_t(sign | 0x7E00 | ((absx >> 13) & 0x3FF));
    }
    // 65520 is halfway between 65504 (max half, odd mantissa) and 65536, so it ties up to Inf.
    if (absx >= 0x477FF000) return uint16_t(sign | 0x7C00);
    if (absx < 0x38800000) {
        // Below the smallest normal half (2^-14): result is a subnormal in units of 2^-24.
        const uint32_t exp = absx >> 23;
        const unsigned shift = 126 - exp;
        if (shift > 24) return sign;  // below 2^-25 (or exactly it, tying to even zero)
        return uint16_t(sign | shift_rne((absx & 0x7FFFFF) | 0x800000, shift));
    }
    // Normal: rebias the exponent and round away the 13 low mantissa bits; a carry into the exponent is
    // the correct result (including the last binade before Inf, excluded above).
    return uint16_t(sign | shift_rne(absx - 0x38000000, 13));
}

float bf16_to_float(uint16_t b) { return float_of(uint32_t(b) << 16); }

uint16_t float_to_bf16(float f) {
    const uint32_t x = bits_of(f);
    // NaN: rounding could carry a low-bit payload away and produce Inf, so quiet it instead.
    if ((x & 0x7FFFFFFF) > 0x7F800000) return uint16_t((x >> 16) | 0x0040);
    return uint16_t((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

}  // namespace quench
