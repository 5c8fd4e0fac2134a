#pragma once
// Seeded weight matrices and quantized tensors for the codec and kernel tests, and the relative error they
// are judged by.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "quant/quantized_tensor.h"

namespace quench::test {

// Log-normal-scaled Gaussian weights, like a trained layer's.
at::Tensor trained_like(int64_t rows, int64_t cols, uint64_t seed);

// Standard normal values of the given shape.
at::Tensor gaussian(const std::vector<int64_t>& shape, uint64_t seed);

// ||approx - ref|| / ||ref|| (Frobenius norms).
double rel_error(const at::Tensor& approx, const at::Tensor& ref);

// A rows x cols N(0, 0.02^2) matrix quantized with spec, calibrated on 4 x cols random inputs (Hessian and
// per-channel activation scales in [0.5, 1.5)); seed draws all of it and seeds the codec.
QuantizedTensor quantize_random(const std::string& spec, int64_t rows, int64_t cols, uint64_t seed = 1);

}  // namespace quench::test
