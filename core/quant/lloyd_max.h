#pragma once
// Lloyd-Max quantizer design for the sources the rotation codecs see: scalar quantizers for N(0,1) and for
// the Rayleigh amplitude of a 2-D Gaussian pair (computed from closed-form cell moments, no sampling), and
// the 2-D Lloyd (k-means) codebook for the unit circular Gaussian N(0, I2) that QAM-W codes pairs against.
// Designs are cached in-process, so every layer of a model reuses one codebook per size.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace quench {

struct ScalarQuantizer {
    std::vector<double> levels;      // ascending reconstruction levels
    std::vector<double> thresholds;  // levels.size() - 1 ascending decision boundaries (midpoints of levels)
    double mse = 0;                  // expected squared error under the design distribution
};

// Lloyd-Max quantizer with `levels` (>= 1) levels for N(0,1).
const ScalarQuantizer& lloyd_max_gaussian(int levels);
// Lloyd-Max quantizer for the Rayleigh distribution with sigma 1, pdf r exp(-r^2/2): the amplitude of a pair
// of independent N(0,1) coordinates (E r^2 = 2).
const ScalarQuantizer& lloyd_max_rayleigh(int levels);

// Lloyd codebook of K (2..65536) points for N(0, I2), each coordinate of unit variance (E||p||^2 = 2).
// float32 [K, 2]; trained once per K per process on a fixed deterministic set of 2^20 samples (~2 s at K = 4096).
const at::Tensor& gaussian_codebook_2d(int64_t K);

// Index of the nearest codeword (Euclidean) for each point: points [n, 2] float32, codebook [K, 2] float32
// -> int64 [n]; ties go to the lower index. Exact; a grid over the codebook prunes the candidates, so the
// cost is ~20 distances per point rather than K.
at::Tensor nearest_codeword_2d(const at::Tensor& points, const at::Tensor& codebook);

}  // namespace quench
