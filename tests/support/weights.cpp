#include "support/weights.h"

#include <torch/torch.h>

#include "quant/codec.h"

namespace quench::test {

at::Tensor trained_like(int64_t rows, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return torch::randn({rows, cols}, gen) * torch::exp(0.35 * torch::randn({rows, cols}, gen)) * 0.02;
}

at::Tensor gaussian(const std::vector<int64_t>& shape, uint64_t seed) {
    return torch::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed));
}

double rel_error(const at::Tensor& approx, const at::Tensor& ref) {
    return ((approx - ref).norm() / ref.norm()).item<double>();
}

QuantizedTensor quantize_random(const std::string& spec, int64_t rows, int64_t cols, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const auto W = torch::randn({rows, cols}, gen) * 0.02;
    const auto x = torch::randn({4 * cols, cols}, gen);
    const CalibStats calib{x.t().matmul(x) / static_cast<double>(4 * cols), torch::rand({cols}, gen) + 0.5};
    return make_codec(spec)->quantize(W, {&calib, seed, nullptr});
}

}  // namespace quench::test
