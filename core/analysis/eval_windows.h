#pragma once
// How a token stream is cut into evaluation windows, recorded with every number so results are
// comparable: ctx, stride, how many tokens were scored, and BOS handling.
#include <cstdint>
#include <string>
#include <vector>

namespace quench {

struct EvalOptions {
    int64_t ctx = 0;         // window length; 0 = min(model max positions, 2048)
    int64_t stride = 0;      // 0 = ctx (non-overlapping windows); < ctx slides and scores only new tokens
    int64_t max_tokens = 0;  // 0 = the whole text
    int64_t batch = 4;       // windows per forward pass
    // true: every window starts with BOS (llama.cpp style); false: the text is tokenized once with BOS at
    // its start and cut as is (GPTQ/HF style).
    bool bos_per_window = false;
};

struct EvalProtocol {
    int64_t ctx = 0;
    int64_t stride = 0;
    int64_t text_tokens = 0;    // tokens in the text after --max-tokens
    int64_t scored_tokens = 0;  // next-token predictions that count
    int64_t windows = 0;
    bool bos_per_window = false;
    std::string describe() const;  // "ctx=512 stride=512 windows=78 scored=39703 of 39780 tokens, bos=start"
};

struct EvalWindow {
    int64_t begin = 0;       // index in the token stream of the window's first text token
    int64_t length = 0;      // text tokens in the window (a BOS prefix, if any, comes on top)
    int64_t score_from = 1;  // window positions [score_from, length) are scored
};

// Plans windows over n text tokens: HF's sliding-window scheme (non-overlapping when stride == ctx), each
// window scoring only tokens no earlier window scored. With bos_prefix every window is fed as
// [BOS, tokens...], so it holds ctx - 1 text tokens and its first token is scored too (predicted from BOS).
// Throws quench::Error for too few tokens or bad ctx/stride.
std::vector<EvalWindow> plan_windows(int64_t n_tokens, int64_t ctx, int64_t stride, bool bos_prefix,
                                     EvalProtocol* protocol);

// Resolves ctx/stride defaults against the model's maximum positions.
EvalOptions resolve_eval_options(EvalOptions o, int64_t model_max_positions);

}  // namespace quench
