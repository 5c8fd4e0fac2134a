#pragma once
// Bit packing of small unsigned codes into bytes, LSB first, codes crossing byte boundaries for widths
// that don't divide 8 (3, 5, 6, 7 bits). Every codec stores its codes this way; kernels/ reads the same layout.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace quench {

// codes: integer tensor of any shape with values in [0, 2^bits); returns uint8 [ceil(numel * bits / 8)].
at::Tensor pack_bits(const at::Tensor& codes, int bits);
// Inverse: the first n codes as int64 [n]. Throws quench::Error when packed is too short.
at::Tensor unpack_bits(const at::Tensor& packed, int bits, int64_t n);
inline int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

}  // namespace quench
