#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "quench_kernels/packed_detail.h"

namespace quench::kernels {
namespace {

bool scalar_forced_by_environment() {
    const char* v = std::getenv("QUENCH_CPU_PATH");
    return v && std::string(v) == "scalar";
}

}  // namespace


bool cpu_has_avx2() {
    // QUENCH_CPU_PATH=scalar makes the kernels act as on a CPU without AVX2 (Auto runs the scalar path, a
    // forced Avx2 throws): the test suite runs once that way so that nothing leans on one CPU's vector paths.
    static const bool has = !scalar_forced_by_environment() && __builtin_cpu_supports("avx2") &&
                            __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return has;
}

namespace detail {

bool use_avx2(const CpuOptions& opt) {
    switch (opt.path) {
        case CpuPath::Scalar:
            return false;
        case CpuPath::Avx2:
            if (!cpu_has_avx2()) throw std::invalid_argument("packed kernels: CpuPath::Avx2 forced on a CPU without AVX2/FMA/F16C");
            return true;
        case CpuPath::Auto:
            break;
    }
    return cpu_has_avx2();
}

void fwht_blocks(float* v, int64_t n, int64_t block) {
    for (int64_t b0 = 0; b0 < n; b0 += block)
        for (int64_t h = 1; h < block; h *= 2)
            for (int64_t j = b0; j < b0 + block; j += 2 * h)
                for (int64_t i = j; i < j + h; ++i) {
                    const float a = v[i], b = v[i + h];
                    v[i] = a + b;
                    v[i + h] = a - b;
                }
}

float hadamard_norm(int64_t block) { return static_cast<float>(std::sqrt(static_cast<double>(block))); }

}  // namespace detail
}  // namespace quench::kernels
