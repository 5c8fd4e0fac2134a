#include "quant/hadamard.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"

namespace quench {

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

at::Tensor hadamard_blocks(const at::Tensor& x, int64_t block) {
    if (!is_power_of_two(block)) throw Error("Hadamard block size " + std::to_string(block) + " is not a power of two");
    const int64_t n = x.size(-1);
    if (n % block != 0)
        throw Error("Hadamard: dimension " + std::to_string(n) + " is not a multiple of block " + std::to_string(block));
    auto shape = x.sizes().vec();
    auto y = x.reshape({-1, block}).to(torch::kFloat32).clone();
    // Butterfly passes: pair elements h apart and replace them by their sum and difference.
    for (int64_t h = 1; h < block; h *= 2) {
        auto v = y.view({y.size(0), block / (2 * h), 2, h});
        auto a = v.select(2, 0), b = v.select(2, 1);
        auto sum = a + b, diff = a - b;
        y = torch::stack({sum, diff}, 2).view({y.size(0), block});
    }
    return (y / std::sqrt(static_cast<double>(block))).view(shape);
}

at::Tensor random_signs(int64_t n, uint64_t seed) {
    auto out = torch::empty({n}, torch::kFloat32);
    float* p = out.data_ptr<float>();
    uint64_t s = seed;
    for (int64_t i = 0; i < n; ++i) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        p[i] = (z & 1) ? 1.0f : -1.0f;
    }
    return out;
}

}  // namespace quench
