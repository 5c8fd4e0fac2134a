#pragma once
// A small untied Llama checkpoint with chosen widths and seeded random weights, for the shapes the real
// model lacks (a width a codec cannot take, widths other settings divide).
#include <cstdint>
#include <string>

namespace quench::test {

// `blocks` blocks (2 by default), 4 attention heads over `hidden` (2 key-value heads), vocabulary 2048 (the
// real model's tokenizer fits it); `tied`: the lm_head is the embedding. Writes config.json and
// model.safetensors under dir/name and returns that folder.
std::string write_tiny_llama(const std::string& dir, const std::string& name, int64_t hidden, int64_t intermediate,
                             int blocks = 2, bool tied = false);

}  // namespace quench::test
