#pragma once
// Tensor element types as spelled in safetensors headers.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace quench {

enum class DType : int { F32 = 1, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL };

std::size_t dtype_size(DType dt);
const char* dtype_name(DType dt);                              // "F32", "BF16", ...
std::optional<DType> dtype_from_name(const std::string& name);  // nullopt when unknown

// Scalar conversions used by the loaders and the writers (round-to-nearest-even for narrowing).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

}  // namespace quench
