#pragma once
// KL of a model with a few weights changed against the model as stored, measured many times on one fixed
// sample: what sensitivity does for every (layer, setting) pair. The reference's log-probabilities are
// computed once and kept in a scratch file, and the sample's hidden states at one block's input are kept as
// the probe moves down the model, so a measurement whose changes all lie in that block or later runs only
// the blocks from there on, for the changed side only. Walking N blocks in order, a measurement costs about
// N/2 blocks instead of evaluate_kl's 2N. Each measurement equals evaluate_kl(original, current) on the same
// tokens and options, bit for bit: the same operations on the same batches.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/eval_pass.h"
#include "model/hidden_states.h"

namespace quench {

class ProgressSink;
class ScratchFile;

class KlProbe {
public:
    // Runs the reference (original weights) over tokens cut as options say. memory_cap and spill_dir: where
    // the kept hidden states live (model/hidden_states.h); the log-probabilities always go to a scratch file
    // in spill_dir (scored tokens x vocab x 4 bytes: 262 MB for 2048 tokens of a 32000-token vocabulary).
    // Throws quench::Error on bad options or too few tokens, quench::Cancelled.
    KlProbe(const LlamaModel& model, const std::vector<int32_t>& tokens, EvalOptions options, int32_t bos_id,
            int64_t memory_cap = HiddenStates::kDefaultMemoryCap, const std::string& spill_dir = "",
            ProgressSink* progress = nullptr);
    ~KlProbe();
    KlProbe(const KlProbe&) = delete;
    KlProbe& operator=(const KlProbe&) = delete;

    // The block whose input the kept states are; model.num_blocks() past the last block.
    int position() const { return position_; }
    // Moves the kept states past block position() with the original weights. Throws quench::Error past the
    // last block, quench::Cancelled between batches (the probe is then unusable).
    void advance(ProgressSink* progress = nullptr);
    // KL(original || current weights). The current weights of blocks before position() must be the original
    // ones (not checked: a change there is simply not seen).
    KlReport measure(ProgressSink* progress = nullptr) const;

private:
    const LlamaModel& model_;
    EvalPlan plan_;
    int position_ = 0;
    HiddenStates states_;  // one entry per batch of plan_
    std::unique_ptr<ScratchFile> reference_;  // log-probabilities, chunk after chunk in for_each_scored_chunk order
};

}  // namespace quench
