#pragma once
// A quantized weight matrix in its stored form: named parts (bit-packed codes, scales, norms, codebooks,
// transforms), each with the exact number of bits it costs. Dequantization reads only these parts, so
// serializing the parts is the codec's complete serialization, bit for bit, and the bit accounting is
// honest by construction.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "quant/codec_spec.h"

namespace quench {

enum class PartRole { Codes = 1, Scale, Norm, Codebook, Transform, Other };
const char* part_role_name(PartRole r);

struct QuantPart {
    std::string name;  // unique within the tensor: "codes", "scales", "M", ...
    PartRole role = PartRole::Codes;
    at::Tensor data;   // uint8 for packed codes; float16/float32/int tensors otherwise; CPU, contiguous
    int64_t bits = 0;  // storage cost in bits (packed codes: numel * bits per code; fp16 scales: numel * 16)
    // Shared parts (a codebook or lift matrix used by every layer with the same setting) are stored once
    // per model; per-layer totals still include them, model totals count them once.
    bool shared = false;
};

struct QuantizedTensor {
    CodecSpec spec;
    int64_t rows = 0, cols = 0;
    std::vector<QuantPart> parts;

    const QuantPart& part(const std::string& name) const;  // throws quench::Error naming the part
    int64_t numel() const { return rows * cols; }
    double code_bits_per_weight() const;   // Codes parts only
    double total_bits_per_weight() const;  // every part
};

}  // namespace quench
