#pragma once
// Hadamard transforms shared by the rotation-based codecs (QAM-W, LiftQuant, LC-QAT): an orthonormal
// Walsh-Hadamard transform over blocks of a power-of-two size, optionally with seeded random signs
// (the "random-sign Hadamard" incoherence step). Orthonormal, so the inverse of H is H^T.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace quench {

bool is_power_of_two(int64_t n);
// x: [..., n] with n a multiple of block; transforms each block of the last dimension (fast O(n log block)).
at::Tensor hadamard_blocks(const at::Tensor& x, int64_t block);
// Seeded random +-1 signs of length n (deterministic across platforms: splitmix64).
at::Tensor random_signs(int64_t n, uint64_t seed);

}  // namespace quench
