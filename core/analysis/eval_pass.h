#pragma once
// The parts of an evaluation pass that model_eval (whole passes) and kl_probe (passes resumed at a block)
// share: the text's windows grouped into batches, the groups of batches that run block-major, the scored
// positions of a batch in the order results are reduced, and the reduction of per-position KL into a report.
// One definition keeps the two bit-for-bit equal.
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "analysis/eval_windows.h"
#include "analysis/model_eval.h"

namespace quench {

constexpr int64_t kPositionChunk = 256;  // positions per logits chunk: bounds memory at chunk * vocab floats
// Hidden-state bytes of one model side a group of batches may hold: windows run block-major within a group.
constexpr int64_t kGroupHiddenBytes = int64_t(256) << 20;

struct EvalBatch {
    std::size_t first = 0;  // index of its first window
    at::Tensor input;       // int64 [windows, length (+1 with a BOS per window)]: consecutive windows of one length
};

struct EvalPlan {
    EvalOptions options;  // resolved
    EvalProtocol protocol;
    std::vector<EvalWindow> windows;
    std::vector<int32_t> text;  // the token stream the windows index
    std::vector<EvalBatch> batches;
    int64_t offset = 0;  // 1 when every window starts with BOS: scored text position p is input token p + 1
};

// Cuts tokens into windows and batches as options say. Throws quench::Error on bad options or too few tokens.
EvalPlan plan_eval(const LlamaModel& m, const std::vector<int32_t>& tokens, EvalOptions options, int32_t bos_id);

// The end (exclusive) of the group of batches from g0 whose hidden states of width `hidden` fit
// kGroupHiddenBytes; a group holds at least one batch.
std::size_t group_end(const EvalPlan& plan, std::size_t g0, int64_t hidden);

// Calls fn(row, first, count, target) for every chunk of scored positions of batch `b`, in order: input
// positions [first, first + count) of the batch's row predict `target` (int64 [count]).
template <typename F>
void for_each_scored_chunk(const EvalPlan& plan, std::size_t b, F&& fn) {
    const EvalBatch& batch = plan.batches[b];
    for (int64_t r = 0; r < batch.input.size(0); ++r) {
        const EvalWindow& w = plan.windows[batch.first + static_cast<std::size_t>(r)];
        // Input position q predicts input token q + 1; scored text position p is input token p + offset.
        for (int64_t q0 = w.score_from + plan.offset - 1; q0 < w.length + plan.offset - 1; q0 += kPositionChunk) {
            const int64_t n = std::min(kPositionChunk, w.length + plan.offset - 1 - q0);
            fn(r, q0, n, batch.input[r].narrow(0, q0 + 1, n));
        }
    }
}

// Sums of a KL evaluation, filled a chunk of positions at a time.
struct KlSums {
    double nll_ref = 0, nll_test = 0, agree = 0, dp2 = 0;
    std::vector<float> per_token_kl;
    // ref, test: log-probabilities [n, vocab] of n positions; target: int64 [n], the tokens they predict.
    void add(const at::Tensor& ref, const at::Tensor& test, const at::Tensor& target);
};

// The report of the sums (kl statistics, agreement, perplexities); seconds are left to the caller.
KlReport kl_report(const EvalPlan& plan, KlSums&& sums);

}  // namespace quench
