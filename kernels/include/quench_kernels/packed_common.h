#pragma once
// What every packed kernel shares: how a CPU call is run (threads, and which code path, so tests can check
// the scalar fallback and the AVX2 path on the same machine) and exact fp16 <-> fp32 conversion (the codecs
// store scales and norms as fp16; kernels read them as raw uint16_t bits, as core's tensors hold them).
#include <cstdint>
#include <cstring>

namespace quench::kernels {

enum class CpuPath {
    Auto,    // AVX2 + FMA + F16C when the CPU has them (checked at run time), else scalar
    Scalar,  // portable C++ only
    Avx2,    // std::invalid_argument when the CPU lacks AVX2, FMA or F16C
};

struct CpuOptions {
    int threads = 0;  // output rows are split over this many threads (0 = hardware concurrency)
    CpuPath path = CpuPath::Auto;
};

// AVX2, FMA and F16C all present (__builtin_cpu_supports), and QUENCH_CPU_PATH is not `scalar`.
bool cpu_has_avx2();

// fp16 bits -> fp32, exact for every value (subnormals, infinities, NaN payloads kept).
inline float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        // Subnormal half: mant * 2^-24, exact in fp32 (a normal float).
        float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
        std::memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// fp32 -> fp16 bits, round to nearest even with overflow to infinity: what torch's .to(kHalf) does.
inline uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN: torch's canonical quiet NaN
    if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds past 65504
    if (x < 0x38800000u) {
        // Below 2^-14 the half is subnormal: its mantissa is |f| * 2^24 rounded to nearest even (the
        // scaling is exact; 1024 lands on the smallest normal half, which is the right bit pattern too).
        float a;
        std::memcpy(&a, &x, 4);
        const float m = a * 16777216.0f;
        const auto mi = static_cast<uint32_t>(m);
        const float frac = m - static_cast<float>(mi);
        uint32_t r = mi + ((frac > 0.5f || (frac == 0.5f && (mi & 1u))) ? 1u : 0u);
        return static_cast<uint16_t>(sign | r);
    }
    x += 0xfffu + ((x >> 13) & 1u);  // round the 13 dropped bits to nearest even
    return static_cast<uint16_t>(sign | ((x - (112u << 23)) >> 13));
}

}  // namespace quench::kernels
