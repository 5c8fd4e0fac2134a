#pragma once
// y = x W^T computed by the packed kernels straight from a QuantizedTensor's parts, as a runtime reading
// a packed checkpoint would: W is never materialised. Up to eight rows of x (the kernels' batch limit) go
// through one GEMV call threaded over output rows; longer inputs run their batches of eight in parallel.
//
// Activations: Fp32 runs the exact kernels. Int8 quantizes each input row in blocks (llama.cpp's Q8 idea,
// kernels' packed_int8.h) where an int8 GEMV exists and is the faster one: scalar grids other than ternary
// (whose fp32 GEMV is faster than its int8 decode), LiftQuant and LC-QAT; QAM-W layers and ternary grids
// stay fp32. Codes of 1 to 3 bits (LiftQuant's and LC-QAT's included) run the table-lookup GEMV
// (packed_int8_lut.h) over a copy re-laid once at construction, which takes the stored codes' place: their
// pages are given back (release_pages), so the codes are not held twice. The error is bounded per output
// in packed_int8.h.
#include <ATen/core/Tensor.h>

#include <memory>

#include "quant/quantized_tensor.h"

namespace quench {

enum class PackedActivations { Fp32, Int8 };

class PackedLinear {
public:
    // Keeps q (the kernels read its parts in place). quench::Error naming the spec when no packed kernel
    // reads it (qamw coding=polar) or a part does not fit its kernel.
    explicit PackedLinear(QuantizedTensor q, int threads = 0, PackedActivations acts = PackedActivations::Fp32);
    PackedLinear(PackedLinear&&) noexcept;
    PackedLinear& operator=(PackedLinear&&) noexcept;
    ~PackedLinear();

    int64_t out_features() const;
    int64_t in_features() const;
    const QuantizedTensor& tensor() const;
    // True when forward quantizes its input to int8 (asked for Int8, and this layer has such a kernel).
    bool int8_activations() const;

    // x: fp32 [..., in_features] -> [..., out_features]. With fp32 activations it differs from x W'^T with
    // W' = dequantize(q) by fp32 summation order only (the kernels sum each group in fp32, then scale).
    at::Tensor forward(const at::Tensor& x) const;

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace quench
