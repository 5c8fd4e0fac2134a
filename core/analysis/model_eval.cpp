#include "analysis/model_eval.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/progress.h"

namespace quench {
namespace {

constexpr int64_t kPositionChunk = 256;  // positions per logits chunk: bounds memory at chunk * vocab floats

// Per scored position, what the evaluators reduce: log-probs of the target and (for KL) the comparison.
struct ChunkStats {
    at::Tensor nll_ref, nll_test;  // [n]
    at::Tensor kl;                 // [n]
    at::Tensor top1_agree;         // [n] bool
    at::Tensor delta_p;            // [n]
};

// Hidden-state bytes of one model side a group of batches may hold: windows run block-major within a group.
constexpr int64_t kGroupHiddenBytes = int64_t(256) << 20;

// The final-normed hidden states of a group of batches, block-major: one block over every batch of the
// group before the next, so a streamed model reads each block's weights once per group, not once per batch.
// The numbers are forward_hidden's: the same operations on the same batches.
std::vector<at::Tensor> group_hidden(const ModelSide& side, const std::vector<at::Tensor>& inputs, ProgressSink& progress,
                                     double f0, double f1) {
    const LlamaModel& m = *side.model;
    std::vector<at::Tensor> h;
    for (const auto& input : inputs) h.push_back(m.embed(input));
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

// Runs windows in batches over one or two models and hands every chunk of scored positions to `sink`.
// Returns the number of window tokens fed through the model(s).
template <typename Sink>
int64_t run_windows(ModelSide a, const ModelSide* b, const std::vector<int32_t>& tokens, const EvalOptions& o,
                    int32_t bos_id, const std::vector<EvalWindow>& windows, ProgressSink& progress, Sink&& sink) {
    const bool bos = o.bos_per_window;
    if (bos && bos_id < 0) throw Error("evaluation: bos_per_window needs a tokenizer with a BOS token");
    const int64_t off = bos ? 1 : 0;
    // Batches of consecutive windows of equal length (only the last window can be shorter).
    struct Batch {
        std::size_t first;
        at::Tensor input;
    };
    std::vector<Batch> batches;
    for (std::size_t i = 0; i < windows.size();) {
        std::size_t j = i;
        while (j < windows.size() && j - i < static_cast<std::size_t>(o.batch) && windows[j].length == windows[i].length) ++j;
        const int64_t B = static_cast<int64_t>(j - i), L = windows[i].length + off;
        auto input = torch::empty({B, L}, torch::kLong);
        auto acc = input.accessor<int64_t, 2>();
        for (int64_t r = 0; r < B; ++r) {
            const auto& w = windows[i + r];
            if (bos) acc[r][0] = bos_id;
            for (int64_t p = 0; p < w.length; ++p) acc[r][p + off] = tokens[w.begin + p];
        }
        batches.push_back({i, input});
        i = j;
    }
    const int64_t hidden = std::max(a.model->config().hidden_size, b ? b->model->config().hidden_size : 0);
    int64_t fed = 0;
    for (std::size_t g0 = 0; g0 < batches.size();) {
        // A group: batches whose hidden states fit kGroupHiddenBytes (at least one).
        std::size_t g1 = g0;
        int64_t bytes = 0;
        std::vector<at::Tensor> inputs;
        while (g1 < batches.size()) {
            const int64_t n = batches[g1].input.numel() * hidden * 4;
            if (g1 > g0 && bytes + n > kGroupHiddenBytes) break;
            bytes += n;
            inputs.push_back(batches[g1].input);
            ++g1;
        }
        const double f0 = double(batches[g0].first) / windows.size();
        const double f1 = g1 < batches.size() ? double(batches[g1].first) / windows.size() : 1.0;
        const double fm = b ? f0 + (f1 - f0) * 0.4 : f0 + (f1 - f0) * 0.8;
        const std::vector<at::Tensor> ha = group_hidden(a, inputs, progress, f0, fm);
        const std::vector<at::Tensor> hb = b ? group_hidden(*b, inputs, progress, fm, f0 + (f1 - f0) * 0.8)
                                             : std::vector<at::Tensor>();
        for (std::size_t gi = 0; gi < inputs.size(); ++gi) {
            progress.check();
            const at::Tensor& input = inputs[gi];
            const int64_t B = input.size(0), L = input.size(1);
            for (int64_t r = 0; r < B; ++r) {
                const auto& w = windows[batches[g0 + gi].first + static_cast<std::size_t>(r)];
                // Input position q predicts input token q + 1; scored text position p is input token p + off.
                for (int64_t q0 = w.score_from + off - 1; q0 < w.length + off - 1; q0 += kPositionChunk) {
                    const int64_t n = std::min(kPositionChunk, w.length + off - 1 - q0);
                    auto target = input[r].narrow(0, q0 + 1, n);
                    auto la = torch::log_softmax(a.model->logits(ha[gi][r].narrow(0, q0, n), a.weights, a.linear), -1);
                    ChunkStats s;
                    auto ta = la.gather(1, target.unsqueeze(1)).squeeze(1);
                    s.nll_ref = -ta;
                    if (b) {
                        auto lb = torch::log_softmax(b->model->logits(hb[gi][r].narrow(0, q0, n), b->weights, b->linear), -1);
                        auto tb = lb.gather(1, target.unsqueeze(1)).squeeze(1);
                        s.nll_test = -tb;
                        s.kl = (la.exp() * (la - lb)).sum(-1).clamp_min(0.0);
                        s.top1_agree = la.argmax(-1).eq(lb.argmax(-1));
                        s.delta_p = tb.exp() - ta.exp();
                    }
                    sink(s);
                }
            }
            fed += B * L;
        }
        progress.report(f1, "evaluating");
        g0 = g1;
    }
    return fed;
}

double percentile(const std::vector<float>& sorted, double q) {
    if (sorted.empty()) return 0;
    const double pos = q * (sorted.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

struct Prepared {
    EvalOptions options;
    EvalProtocol protocol;
    std::vector<EvalWindow> windows;
    std::vector<int32_t> text;  // the token stream the windows index
};

Prepared prepare(const LlamaModel& m, const std::vector<int32_t>& tokens, EvalOptions options, int32_t bos_id) {
    Prepared p;
    p.options = resolve_eval_options(options, m.config().max_position_embeddings);
    p.text = tokens;
    // With a BOS per window the stream is cut without its leading BOS; each window gets its own.
    if (p.options.bos_per_window && !p.text.empty() && p.text.front() == bos_id) p.text.erase(p.text.begin());
    if (p.options.max_tokens > 0 && static_cast<int64_t>(p.text.size()) > p.options.max_tokens)
        p.text.resize(static_cast<std::size_t>(p.options.max_tokens));
    p.windows = plan_windows(static_cast<int64_t>(p.text.size()), p.options.ctx, p.options.stride,
                             p.options.bos_per_window, &p.protocol);
    return p;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

PerplexityResult evaluate_perplexity(ModelSide model, const std::vector<int32_t>& tokens, EvalOptions options,
                                     int32_t bos_id, ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    const auto t0 = Clock::now();
    Prepared p = prepare(*model.model, tokens, options, bos_id);
    double nll_sum = 0;
    int64_t count = 0;
    const int64_t fed = run_windows(model, nullptr, p.text, p.options, bos_id, p.windows,
                                    progress ? *progress : null_progress(), [&](const ChunkStats& s) {
                                        nll_sum += s.nll_ref.sum().item<double>();
                                        count += s.nll_ref.numel();
                                    });
    PerplexityResult r;
    r.protocol = p.protocol;
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
    Prepared p = prepare(*ref.model, tokens, options, bos_id);
    KlReport r;
    r.protocol = p.protocol;
    r.first_scored_token = p.windows.front().begin + p.windows.front().score_from;
    r.per_token_kl.reserve(static_cast<std::size_t>(p.protocol.scored_tokens));
    double nll_ref = 0, nll_test = 0, agree = 0, dp2 = 0;
    run_windows(ref, &test, p.text, p.options, bos_id, p.windows, progress ? *progress : null_progress(),
                [&](const ChunkStats& s) {
                    nll_ref += s.nll_ref.sum().item<double>();
                    nll_test += s.nll_test.sum().item<double>();
                    agree += s.top1_agree.sum().item<double>();
                    dp2 += s.delta_p.pow(2).sum().item<double>();
                    auto kl = s.kl.contiguous();
                    r.per_token_kl.insert(r.per_token_kl.end(), kl.data_ptr<float>(), kl.data_ptr<float>() + kl.numel());
                });
    const double n = static_cast<double>(r.per_token_kl.size());
    double sum = 0, sum2 = 0;
    for (float v : r.per_token_kl) {
        sum += v;
        sum2 += static_cast<double>(v) * v;
    }
    r.kl_mean = sum / n;
    const double var = n > 1 ? std::max(0.0, (sum2 - n * r.kl_mean * r.kl_mean) / (n - 1)) : 0.0;
    r.kl_stderr = std::sqrt(var / n);
    std::vector<float> sorted = r.per_token_kl;
    std::sort(sorted.begin(), sorted.end());
    r.kl_median = percentile(sorted, 0.5);
    r.kl_p90 = percentile(sorted, 0.9);
    r.kl_p99 = percentile(sorted, 0.99);
    r.kl_p999 = percentile(sorted, 0.999);
    r.kl_max = sorted.back();
    r.top1_agreement = agree / n;
    r.rms_delta_p = std::sqrt(dp2 / n);
    r.ppl_ref = std::exp(nll_ref / n);
    r.ppl_test = std::exp(nll_test / n);
    r.ppl_ratio = r.ppl_test / r.ppl_ref;
    r.seconds = seconds_since(t0);
    return r;
}

}  // namespace quench
