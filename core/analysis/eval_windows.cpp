#include "analysis/eval_windows.h"

#include <algorithm>

#include "common/error.h"

namespace quench {

std::string EvalProtocol::describe() const {
    return "ctx=" + std::to_string(ctx) + " stride=" + std::to_string(stride) + " windows=" + std::to_string(windows) +
           " scored=" + std::to_string(scored_tokens) + " of " + std::to_string(text_tokens) +
           " tokens, bos=" + (bos_per_window ? "per-window" : "start");
}

EvalOptions resolve_eval_options(EvalOptions o, int64_t model_max_positions) {
    if (o.ctx < 0 || o.stride < 0 || o.max_tokens < 0 || o.batch <= 0)
        throw Error("evaluation options: ctx, stride and max_tokens must be >= 0 and batch > 0");
    if (o.ctx == 0) o.ctx = std::min<int64_t>(model_max_positions, 2048);
    if (o.ctx > model_max_positions)
        throw Error("evaluation options: ctx " + std::to_string(o.ctx) + " exceeds the model's max_position_embeddings " +
                    std::to_string(model_max_positions));
    if (o.ctx < 2) throw Error("evaluation options: ctx must be at least 2");
    if (o.stride == 0) o.stride = o.ctx;
    if (o.stride > o.ctx) throw Error("evaluation options: stride must not exceed ctx");
    return o;
}

std::vector<EvalWindow> plan_windows(int64_t n, int64_t ctx, int64_t stride, bool bos_prefix,
                                     EvalProtocol* protocol) {
    const int64_t min_tokens = bos_prefix ? 1 : 2;
    if (n < min_tokens)
        throw Error("evaluation text has " + std::to_string(n) + " token(s); at least " + std::to_string(min_tokens) +
                    " are needed");
    if (ctx < 2 || stride < 1 || stride > ctx) throw Error("evaluation windows: need ctx >= 2 and 1 <= stride <= ctx");
    const int64_t span = bos_prefix ? ctx - 1 : ctx;
    if (bos_prefix) stride = std::min(stride, span);
    std::vector<EvalWindow> out;
    // Tokens before scored_until have been scored; without a BOS prefix token 0 never can be.
    int64_t scored_until = bos_prefix ? 0 : 1;
    for (int64_t begin = 0; scored_until < n; begin += stride) {
        const int64_t end = std::min(begin + span, n);
        EvalWindow w{begin, end - begin, std::max<int64_t>(bos_prefix ? 0 : 1, scored_until - begin)};
        if (w.score_from < w.length) out.push_back(w);
        scored_until = end;
        if (end == n) break;
    }
    if (protocol) {
        protocol->ctx = ctx;
        protocol->stride = stride;
        protocol->bos_per_window = bos_prefix;
        protocol->text_tokens = n;
        protocol->windows = static_cast<int64_t>(out.size());
        protocol->scored_tokens = 0;
        for (const auto& w : out) protocol->scored_tokens += w.length - w.score_from;
    }
    return out;
}

}  // namespace quench
