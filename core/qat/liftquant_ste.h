#pragma once
// LiftQuant's training layer (docs/methods.md section 4(a), "fine-tuning"): latent binary codes Y_lat with a
// sign straight-through estimator (forward sign, 0 -> +1; backward g*1{|Y_lat| <= 1}), trainable row scales s
// and per-input-column scales c (the input transform; the codec's random-sign Hadamard stays fixed), the lift
// matrix M fixed. The lift is applied to the activations, as the paper's inference form o = s*W_q*(T* a):
//     x'' = H(signs * c * x),  z_i = M^T x''_i (one D-vector per d-chunk),  y_o = s_o * sum_i y_oi . z_i
// which equals W x for the codec's dequantized W = (s * M y) H diag(signs) / act_scale, with c = 1/act_scale.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace quench {

at::Tensor liftquant_sign_ste(const at::Tensor& latent);

// x [..., cols]; Y_lat [rows, (cols/d)*D]; scales [rows]; col_scale [cols]; signs [cols] or undefined (no
// Hadamard); M [d, D]; had: Hadamard block (ignored without signs).
at::Tensor liftquant_linear(const at::Tensor& x, const at::Tensor& Y_lat, const at::Tensor& scales,
                            const at::Tensor& col_scale, const at::Tensor& signs, const at::Tensor& M, int64_t had);

}  // namespace quench
