#pragma once
// ParetoQ's quantizers with their exact training gradients (facebookresearch/ParetoQ models/utils_quant.py;
// docs/methods.md section 2(a)), one learnable alpha per output row. x = W / alpha (rowwise), g = dL/dW_Q,
// N = numel(W):
//   b=1     W_Q = alpha*sign(W)                     dW = g*1{|x|<=1}      dalpha = sum_j sign(W) g / sqrt(N)
//   b=1.58  W_Q = alpha*round(clip(x,.99)*1.5)/1.5  dW = g*1{|x|<=0.99}   dalpha = sum_j g*[+-1 | q(x)-x] / sqrt(N)
//   b=2     W_Q = alpha*(round(clip(x,.99)*2-.5)+.5)/2, the same with +-0.75 in the clipped region
//   b=3,4   W_Q = alpha*clamp(round(x), Qn, Qp)    dW = g*1{Qn<=x<=Qp}
//           dalpha = sum_j g*[Qn | Qp | round(x)-x] / sqrt(N*Qp)
// Rounding sends exact ties up and sign(0) is +1, as the PTQ grids do (why: paretoq_ste.cpp), so step 0 is
// the PTQ model exactly. alpha is floored at 1e-5 in the forward pass (its gradient still flows, as in the reference's clamp).
#include <ATen/core/Tensor.h>

namespace quench {

// Which ParetoQ function a bit width uses.
enum class ParetoqKind { Binary = 1, Ternary, Seq2, Lsq };
// bits in {1, 1.58, 2, 3, 4}; throws quench::Error otherwise.
ParetoqKind paretoq_kind(double bits);

// The forward value W_Q [rows, cols] of W [rows, cols] and alpha [rows, 1], differentiable in both with the
// gradients above (a LibTorch autograd function).
at::Tensor paretoq_quantize(const at::Tensor& W, const at::Tensor& alpha, double bits);

// LSQ on the 2-bit grid alpha*{-2,-1,0,1} (Qn = -2, Qp = 1): the grid ParetoQ compares SEQ against.
at::Tensor paretoq_lsq2_quantize(const at::Tensor& W, const at::Tensor& alpha);

// The same forward without autograd bookkeeping (export, tests).
at::Tensor paretoq_forward_value(const at::Tensor& W, const at::Tensor& alpha, double bits);

}  // namespace quench
