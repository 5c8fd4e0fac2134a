#include "quant/quantized_tensor.h"

#include "common/error.h"

namespace quench {

const char* part_role_name(PartRole r) {
    switch (r) {
        case PartRole::Codes: return "codes";
        case PartRole::Scale: return "scale";
        case PartRole::Norm: return "norm";
        case PartRole::Codebook: return "codebook";
        case PartRole::Transform: return "transform";
        case PartRole::Other: return "other";
    }
    return "?";
}

const QuantPart& QuantizedTensor::part(const std::string& name) const {
    for (const auto& p : parts)
        if (p.name == name) return p;
    throw Error("quantized tensor (" + spec.to_string() + "): missing part '" + name + "'");
}

double QuantizedTensor::code_bits_per_weight() const {
    int64_t bits = 0;
    for (const auto& p : parts)
        if (p.role == PartRole::Codes) bits += p.bits;
    return numel() ? static_cast<double>(bits) / static_cast<double>(numel()) : 0.0;
}

double QuantizedTensor::total_bits_per_weight() const {
    int64_t bits = 0;
    for (const auto& p : parts) bits += p.bits;
    return numel() ? static_cast<double>(bits) / static_cast<double>(numel()) : 0.0;
}

}  // namespace quench
