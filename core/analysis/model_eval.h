#pragma once
// Perplexity and KL divergence of a model against a reference, computed in lockstep on the same windows.
// Logits are formed a chunk of positions at a time and reduced at once, so no full logits tensor (let
// alone a logits file) is ever held: memory stays at O(batch * chunk * vocab).
#include <cstdint>
#include <vector>

#include "analysis/eval_windows.h"
#include "model/llama_model.h"

namespace quench {

class ProgressSink;

// One side of an evaluation: a model, which of its weight sets to run, and optionally an override that
// computes some linear layers instead (runtime/packed_model.h: packed kernels reading a quantized checkpoint).
struct ModelSide {
    const LlamaModel* model = nullptr;
    LlamaModel::Weights weights = LlamaModel::Weights::Current;
    const LinearOverride* linear = nullptr;
};

struct PerplexityResult {
    EvalProtocol protocol;
    double nll_mean = 0;    // nats per scored token
    double perplexity = 0;  // exp(nll_mean)
    double seconds = 0;
    double tokens_per_second = 0;  // forward throughput over all window tokens
};

struct KlReport {
    EvalProtocol protocol;
    double kl_mean = 0, kl_stderr = 0, kl_median = 0, kl_p90 = 0, kl_p99 = 0, kl_p999 = 0, kl_max = 0;  // nats
    double top1_agreement = 0;  // fraction of positions where both argmaxes agree
    double rms_delta_p = 0;     // RMS change of the probability given to the actual next token
    double ppl_ref = 0, ppl_test = 0, ppl_ratio = 0;
    int64_t first_scored_token = 0;  // per_token_kl[i] is the KL at the prediction of token first_scored_token + i
    std::vector<float> per_token_kl;
    double seconds = 0;
};

// tokens: the text stream (with BOS at its start unless options.bos_per_window); bos_id is used when
// options.bos_per_window. Throws quench::Error on bad options, quench::Cancelled when progress cancels.
PerplexityResult evaluate_perplexity(ModelSide model, const std::vector<int32_t>& tokens, EvalOptions options,
                                     int32_t bos_id, ProgressSink* progress = nullptr);

// KL(P_ref || P_test) per scored token. Both models must share the vocabulary.
KlReport evaluate_kl(ModelSide ref, ModelSide test, const std::vector<int32_t>& tokens, EvalOptions options,
                     int32_t bos_id, ProgressSink* progress = nullptr);

}  // namespace quench
