#pragma once
// Calibration windows walked through the model one block at a time, the pipeline GPTQ quantizes in: the
// windows' hidden states at one block's input are all that is kept between blocks (model/hidden_states.h:
// in memory up to a cap, then in a scratch file), a block runs over every window before the next, and a
// caller may change a block's weights between capturing its inputs and moving past it. One walk over the
// model replaces one full forward per chunk of layers, and each block's weights are read once per step.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <vector>

#include "analysis/layer_capture.h"
#include "model/hidden_states.h"
#include "model/llama_model.h"

namespace quench {

class ProgressSink;

class BlockWalk {
public:
    // Embeds the windows of tokens as capture_layer_inputs takes them (options.ctx, max_tokens, batch).
    // memory_cap: hidden-state bytes kept in memory before the rest spills to a scratch file in spill_dir.
    // Throws quench::Error when tokens hold no whole window.
    BlockWalk(const LlamaModel& model, const std::vector<int32_t>& tokens, CaptureOptions options,
              int64_t memory_cap = HiddenStates::kDefaultMemoryCap, const std::string& spill_dir = "");

    // The block whose input the states are; model.num_blocks() once past the last block, where the input of
    // lm_head is the final-normed state.
    int position() const { return position_; }
    int64_t windows() const { return windows_; }
    const CaptureOptions& options() const { return options_; }
    // Whether later steps accumulate X^T X (CaptureOptions::hessian): a caller whose layers at one position
    // need no Hessian skips its cost there.
    void set_hessian(bool on) { options_.hessian = on; }
    int64_t spilled_bytes() const { return states_.spilled_bytes(); }
    // The windows' hidden states at position(), one entry per batch of options().batch windows.
    const HiddenStates& states() const { return states_; }

    // Runs position()'s block over every window with `which` weights and returns the input statistics of
    // `capture` (layers of that block; past the last block, lm_head only). With advance, the block's outputs
    // become the states and position() moves to the next block (not possible past the last block). Throws
    // quench::Error for a layer of another block, quench::Cancelled between batches (the walk then stays
    // where it was only when advance was false).
    std::map<std::size_t, LayerInputStats> step(const std::vector<std::size_t>& capture, LlamaModel::Weights which,
                                                bool advance, ProgressSink* progress = nullptr);

private:
    const LlamaModel& model_;
    CaptureOptions options_;
    int64_t windows_ = 0;
    int position_ = 0;
    HiddenStates states_;
};

}  // namespace quench
