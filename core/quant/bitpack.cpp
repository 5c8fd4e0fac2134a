#include "quant/bitpack.h"

#include <torch/torch.h>

#include "common/error.h"

namespace quench {

at::Tensor pack_bits(const at::Tensor& codes, int bits) {
    if (bits < 1 || bits > 16) throw Error("pack_bits: bits must be in [1, 16]");
    auto c = codes.reshape({-1}).to(torch::kLong).contiguous();
    const int64_t n = c.numel();
    if (n && (c.min().item<int64_t>() < 0 || c.max().item<int64_t>() >= (int64_t(1) << bits)))
        throw Error("pack_bits: code out of range for " + std::to_string(bits) + " bits");
    auto out = torch::zeros({packed_bytes(n, bits)}, torch::kUInt8);
    uint8_t* dst = out.data_ptr<uint8_t>();
    const int64_t* src = c.data_ptr<int64_t>();
    for (int64_t i = 0, bit = 0; i < n; ++i, bit += bits) {
        uint32_t v = static_cast<uint32_t>(src[i]);
        for (int64_t b = bit; v && b < bit + bits;) {  // write the code across byte boundaries
            const int shift = static_cast<int>(b & 7);
            dst[b >> 3] |= static_cast<uint8_t>(v << shift);
            const int used = 8 - shift;
            v >>= used;
            b += used;
        }
    }
    return out;
}

at::Tensor unpack_bits(const at::Tensor& packed, int bits, int64_t n) {
    if (bits < 1 || bits > 16) throw Error("unpack_bits: bits must be in [1, 16]");
    if (packed.scalar_type() != torch::kUInt8 || packed.numel() < packed_bytes(n, bits))
        throw Error("unpack_bits: packed codes hold " + std::to_string(packed.numel()) + " bytes, " +
                    std::to_string(packed_bytes(n, bits)) + " needed for " + std::to_string(n) + " codes");
    auto p = packed.contiguous();
    const uint8_t* src = p.data_ptr<uint8_t>();
    auto out = torch::empty({n}, torch::kLong);
    int64_t* dst = out.data_ptr<int64_t>();
    const uint32_t mask = (1u << bits) - 1u;
    for (int64_t i = 0, bit = 0; i < n; ++i, bit += bits) {
        uint32_t v = 0;
        for (int64_t b = bit, got = 0; got < bits;) {
            const int shift = static_cast<int>(b & 7);
            v |= static_cast<uint32_t>(src[b >> 3] >> shift) << got;
            got += 8 - shift;
            b += 8 - shift;
        }
        dst[i] = v & mask;
    }
    return out;
}

}  // namespace quench
