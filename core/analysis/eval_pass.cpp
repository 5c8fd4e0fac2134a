#include "analysis/eval_pass.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "model/llama_model.h"

namespace quench {
namespace {

double percentile(const std::vector<float>& sorted, double q) {
    if (sorted.empty()) return 0;
    const double pos = q * (sorted.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

}  // namespace

EvalPlan plan_eval(const LlamaModel& m, const std::vector<int32_t>& tokens, EvalOptions options, int32_t bos_id) {
    EvalPlan p;
    p.options = resolve_eval_options(options, m.config().max_position_embeddings);
    const bool bos = p.options.bos_per_window;
    if (bos && bos_id < 0) throw Error("evaluation: bos_per_window needs a tokenizer with a BOS token");
    p.offset = bos ? 1 : 0;
    p.text = tokens;
    // With a BOS per window the stream is cut without its leading BOS; each window gets its own.
    if (bos && !p.text.empty() && p.text.front() == bos_id) p.text.erase(p.text.begin());
    if (p.options.max_tokens > 0 && static_cast<int64_t>(p.text.size()) > p.options.max_tokens)
        p.text.resize(static_cast<std::size_t>(p.options.max_tokens));
    p.windows = plan_windows(static_cast<int64_t>(p.text.size()), p.options.ctx, p.options.stride, bos, &p.protocol);
    // Batches of consecutive windows of equal length (only the last window can be shorter).
    for (std::size_t i = 0; i < p.windows.size();) {
        std::size_t j = i;
        while (j < p.windows.size() && j - i < static_cast<std::size_t>(p.options.batch) &&
               p.windows[j].length == p.windows[i].length)
            ++j;
        const int64_t B = static_cast<int64_t>(j - i), L = p.windows[i].length + p.offset;
        auto input = torch::empty({B, L}, torch::kLong);
        auto acc = input.accessor<int64_t, 2>();
        for (int64_t r = 0; r < B; ++r) {
            const auto& w = p.windows[i + static_cast<std::size_t>(r)];
            if (bos) acc[r][0] = bos_id;
            for (int64_t q = 0; q < w.length; ++q) acc[r][q + p.offset] = p.text[static_cast<std::size_t>(w.begin + q)];
        }
        p.batches.push_back({i, input});
        i = j;
    }
    return p;
}

std::size_t group_end(const EvalPlan& plan, std::size_t g0, int64_t hidden) {
    std::size_t g1 = g0;
    int64_t bytes = 0;
    while (g1 < plan.batches.size()) {
        const int64_t n = plan.batches[g1].input.numel() * hidden * 4;
        if (g1 > g0 && bytes + n > kGroupHiddenBytes) break;
        bytes += n;
        ++g1;
    }
    return g1;
}

void KlSums::add(const at::Tensor& ref, const at::Tensor& test, const at::Tensor& target) {
    const at::Tensor ta = ref.gather(1, target.unsqueeze(1)).squeeze(1);
    const at::Tensor tb = test.gather(1, target.unsqueeze(1)).squeeze(1);
    nll_ref += (-ta).sum().item<double>();
    nll_test += (-tb).sum().item<double>();
    agree += ref.argmax(-1).eq(test.argmax(-1)).sum().item<double>();
    dp2 += (tb.exp() - ta.exp()).pow(2).sum().item<double>();
    const at::Tensor kl = (ref.exp() * (ref - test)).sum(-1).clamp_min(0.0).contiguous();
    per_token_kl.insert(per_token_kl.end(), kl.data_ptr<float>(), kl.data_ptr<float>() + kl.numel());
}

KlReport kl_report(const EvalPlan& plan, KlSums&& sums) {
    KlReport r;
    r.protocol = plan.protocol;
    r.first_scored_token = plan.windows.front().begin + plan.windows.front().score_from;
    r.per_token_kl = std::move(sums.per_token_kl);
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
    r.top1_agreement = sums.agree / n;
    r.rms_delta_p = std::sqrt(sums.dp2 / n);
    r.ppl_ref = std::exp(sums.nll_ref / n);
    r.ppl_test = std::exp(sums.nll_test / n);
    r.ppl_ratio = r.ppl_test / r.ppl_ref;
    return r;
}

}  // namespace quench
