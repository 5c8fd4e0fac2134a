#pragma once
// Hessian-aware error feedback for vector codes: BlockLDLQ (QuIP, QuIP#; the UniSVQ/LC-QAT PTQ init runs it
// with 4-dim codes). Columns are quantized in groups of `vec`, last group first; each group's target is its
// weight plus the not-yet-absorbed error of the groups already coded, weighted by the block LDL factor of
// the input Hessian, which makes the layer-output proxy loss tr((W - Q) H (W - Q)^T) the sum of the groups'
// own rounding errors. Optional coordinate-descent passes then re-round each group against the full
// residual. With vec = 1 this is GPTQ's error feedback. Any codebook plugs in through GroupQuantizer.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

namespace quench {

class ProgressSink;

// Rounds target [rows, vec] for column group `group` (columns group*vec .. group*vec + vec - 1) to the
// codebook and returns the rounded values [rows, vec] fp32. The callee records the codes it chose; a
// later call for the same group (a tuning pass) overwrites them, so the last call wins.
using GroupQuantizer = std::function<at::Tensor(const at::Tensor& target, int64_t group)>;

struct LdlqOptions {
    int64_t vec = 4;         // columns per code
    int tune_iters = 0;      // coordinate-descent passes after the feedback pass (QuIP#'s quip_tune_iters)
    double retry_damp = 0;   // when H is not positive definite, retry with H + 10^k * retry_damp * I, k = 1..3
};

// QuIP#'s regularize_H: H / mean(diag H) + damp * I, in fp64. Normalising first makes damp scale-free.
// Throws quench::Error when H is not square, not finite, or has no positive diagonal mass.
at::Tensor regularize_hessian(const at::Tensor& H, double damp);

// W: [rows, cols] fp32 in the domain H describes; H: [cols, cols] symmetric (already regularized); cols a
// multiple of vec. Returns the quantized weight [rows, cols] fp32. Checks progress between column buffers
// (throws quench::Cancelled) and throws quench::Error when H stays indefinite after the damping retries.
at::Tensor ldlq(const at::Tensor& W, const at::Tensor& H, const GroupQuantizer& quantize, const LdlqOptions& options,
                ProgressSink* progress = nullptr);

}  // namespace quench
