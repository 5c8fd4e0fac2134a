#include "analysis/model_eval.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "analysis/eval_pass.h"
#include "common/error.h"
#include "common/progress.h"

namespace quench {
namespace {

// The final-normed hidden states of a group of batches, block-major: one block over every batch of the
// group before the next, so a streamed model reads each block's weights once per group, not once per batch.
// The numbers are forward_hidden's: the same operations on the same batches.
std::vector<at::Tensor> group_hidden(const ModelSide& side, const EvalPlan& plan, std::size_t g0, std::size_t g1,
                                     ProgressSink& progress, double f0, double f1) {
    const LlamaModel& m = *side.model;
    std::vector<at::Tensor> h;
    for (std::size_t b = g0; b < g1; ++b) h.push_back(m.embed(plan.batches[b].input));
    const int blocks = m.num_blocks();
    for (int k = 0; k < blocks; ++k) {
        for (auto& x : h) {
            progress.check();
            x = m.block_forward(k, x, side.linear, side.weights);
        }
        progress.report(f0 + (f1 - f0) * (k + 1) / std::max(blocks, 1), "evaluating: block " + std::to_string(k + 1) +
                                                                           "/" + std::to_string(blocks));
    }
    for (auto& x : h) x = m.final_norm(x);
    return h;
}

// Runs the plan's batches over one or two models and hands sink(log-probs of a, of b (undefined without b),
// target) every chunk of scored positions. Returns the number of window tokens fed through the model(s).
template <typename Sink>
int64_t run_windows(ModelSide a, const ModelSide* b, const EvalPlan& plan, ProgressSink& progress, Sink&& sink) {
    const int64_t hidden = std::max(a.model->config().hidden_size, b ? b->model->config().hidden_size : 0);
    const double windows = static_cast<double>(plan.windows.size());
    int64_t fed = 0;
    for (std::size_t g0 = 0; g0 < plan.batches.size();) {
        const std::size_t g1 = group_end(plan, g0, hidden);
        const double f0 = double(plan.batches[g0].first) / windows;
        const double f1 = g1 < plan.batches.size() ? double(plan.batches[g1].first) / windows : 1.0;
        const double fm = b ? f0 + (f1 - f0) * 0.4 : f0 + (f1 - f0) * 0.8;
        const std::vector<at::Tensor> ha = group_hidden(a, plan, g0, g1, progress, f0, fm);
        const std::vector<at::Tensor> hb =
            b ? group_hidden(*b, plan, g0, g1, progress, fm, f0 + (f1 - f0) * 0.8) : std::vector<at::Tensor>();
        for (std::size_t g = g0; g < g1; ++g) {
            progress.check();
            for_each_scored_chunk(plan, g, [&](int64_t r, int64_t q0, int64_t n, const at::Tensor& target) {
                const at::Tensor& xa = ha[g - g0];
                auto la = torch::log_softmax(a.model->logits(xa[r].narrow(0, q0, n), a.weights, a.linear), -1);
                at::Tensor lb;
                if (b) {
                    const at::Tensor& xb = hb[g - g0];
                    lb = torch::log_softmax(b->model->logits(xb[r].narrow(0, q0, n), b->weights, b->linear), -1);
                }
                sink(la, lb, target);
            });
            fed += plan.batches[g].input.numel();
        }
        progress.report(f1, "evaluating");
        g0 = g1;
    }
    return fed;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

PerplexityResult evaluate_perplexity(ModelSide model, const std::vector<int32_t>& tokens, EvalOptions options,
                                     int32_t bos_id, ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    const auto t0 = Clock::now();
    const EvalPlan plan = plan_eval(*model.model, tokens, options, bos_id);
    double nll_sum = 0;
    int64_t count = 0;
    const int64_t fed = run_windows(model, nullptr, plan, progress ? *progress : null_progress(),
                                    [&](const at::Tensor& la, const at::Tensor&, const at::Tensor& target) {
                                        const at::Tensor nll = -la.gather(1, target.unsqueeze(1)).squeeze(1);
                                        nll_sum += nll.sum().item<double>();
                                        count += nll.numel();
                                    });
    PerplexityResult r;
    r.protocol = plan.protocol;
    r.nll_mean = nll_sum / static_cast<double>(count);
    r.perplexity = std::exp(r.nll_mean);
    r.seconds = seconds_since(t0);
    r.tokens_per_second = r.seconds > 0 ? fed / r.seconds : 0;
    return r;
}

KlReport evaluate_kl(ModelSide ref, ModelSide test, const std::vector<int32_t>& tokens, EvalOptions options,
                     int32_t bos_id, ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    if (ref.model->config().vocab_size != test.model->config().vocab_size)
        throw Error("KL divergence: the models' vocabularies differ (" + std::to_string(ref.model->config().vocab_size) +
                    " vs " + std::to_string(test.model->config().vocab_size) + ")");
    const auto t0 = Clock::now();
    const EvalPlan plan = plan_eval(*ref.model, tokens, options, bos_id);
    KlSums sums;
    sums.per_token_kl.reserve(static_cast<std::size_t>(plan.protocol.scored_tokens));
    run_windows(ref, &test, plan, progress ? *progress : null_progress(),
                [&](const at::Tensor& la, const at::Tensor& lb, const at::Tensor& target) { sums.add(la, lb, target); });
    KlReport r = kl_report(plan, std::move(sums));
    r.seconds = seconds_since(t0);
    return r;
}

}  // namespace quench
