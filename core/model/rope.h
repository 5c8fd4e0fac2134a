#pragma once
// Rotary position embeddings in the HF layout (rotate_half over the two halves of each head).
#include <ATen/core/Tensor.h>

#include <utility>

#include "model/model_config.h"

namespace quench {

// Inverse frequencies [head_dim / 2], with linear or llama3 scaling applied as HF does.
at::Tensor rope_inv_freq(const ModelConfig& c);
// cos and sin tables [seq, head_dim] for positions 0..seq-1.
std::pair<at::Tensor, at::Tensor> rope_tables(const ModelConfig& c, const at::Tensor& inv_freq, int64_t seq);
// x: [batch, heads, seq, head_dim]; cos/sin: [seq, head_dim].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace quench
