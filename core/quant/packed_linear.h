#pragma once
// y = x W^T computed by the packed kernels straight from a QuantizedTensor's parts, as a runtime reading
// a packed checkpoint would: W is never materialised. Up to eight rows of x (the kernels' batch limit) go
// through one GEMV call threaded over output rows; longer inputs run their batches of eight in parallel.
#include <ATen/core/Tensor.h>

#include <memory>

#include "quant/quantized_tensor.h"

namespace quench {

class PackedLinear {
public:
    // Keeps q (the kernels read its parts in place). quench::Error naming the spec when no packed kernel
    // reads it (qamw coding=polar) or a part does not fit its kernel.
    explicit PackedLinear(QuantizedTensor q, int threads = 0);
    PackedLinear(PackedLinear&&) noexcept;
    PackedLinear& operator=(PackedLinear&&) noexcept;
    ~PackedLinear();

    int64_t out_features() const;
    int64_t in_features() const;
    const QuantizedTensor& tensor() const;

    // x: fp32 [..., in_features] -> [..., out_features]. Differs from x W'^T with W' = dequantize(q) by
    // fp32 summation order only (the kernels sum each group in fp32, then scale).
    at::Tensor forward(const at::Tensor& x) const;

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace quench
