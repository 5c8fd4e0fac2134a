// Window planning invariants: every token after the first is scored exactly once, in order.
#include <gtest/gtest.h>

#include "analysis/eval_windows.h"
#include "common/error.h"

using namespace quench;

namespace {
// Scored text positions in order, as the evaluator walks them.
std::vector<int64_t> scored_positions(const std::vector<EvalWindow>& ws) {
    std::vector<int64_t> out;
    for (const auto& w : ws)
        for (int64_t p = w.score_from; p < w.length; ++p) out.push_back(w.begin + p);
    return out;
}
}  // namespace

// Sliding windows (stride < ctx) and BOS-prefixed windows score every token; non-overlapping windows
// without BOS leave each window's first token as context only.
TEST(EvalWindows, EveryTokenScoredAtMostOnceInOrder) {
    for (int64_t n : {2, 7, 100, 513}) {
        for (int64_t ctx : {2, 5, 64}) {
            for (int64_t stride : {int64_t(1), ctx / 2 + 1, ctx}) {
                if (stride > ctx) continue;
                for (bool bos : {false, true}) {
                    EvalProtocol proto;
                    auto ws = plan_windows(n, ctx, stride, bos, &proto);
                    auto pos = scored_positions(ws);
                    for (std::size_t i = 1; i < pos.size(); ++i) ASSERT_LT(pos[i - 1], pos[i]);
                    const bool all_scored = bos || stride < ctx;
                    // Non-overlapping: each of the ceil(n / ctx) chunks of the text loses its first token.
                    const int64_t expected = all_scored ? n - (bos ? 0 : 1) : n - (n + ctx - 1) / ctx;
                    ASSERT_EQ(static_cast<int64_t>(pos.size()), expected) << n << " " << ctx << " " << stride << " " << bos;
                    if (all_scored)
                        for (std::size_t i = 0; i < pos.size(); ++i) ASSERT_EQ(pos[i], (bos ? 0 : 1) + static_cast<int64_t>(i));
                    else
                        for (const auto& w : ws) EXPECT_EQ(w.score_from, 1);
                    EXPECT_EQ(proto.scored_tokens, expected);
                    EXPECT_EQ(proto.windows, static_cast<int64_t>(ws.size()));
                    for (const auto& w : ws) EXPECT_LE(w.length + (bos ? 1 : 0), ctx);
                }
            }
        }
    }
}

TEST(EvalWindows, NonOverlappingWindowsCount) {
    EvalProtocol proto;
    auto ws = plan_windows(1000, 100, 100, false, &proto);
    EXPECT_EQ(ws.size(), 10u);
    EXPECT_EQ(proto.scored_tokens, 990);  // the first token of each window is context only
}

TEST(EvalWindows, Errors) {
    EXPECT_THROW(plan_windows(1, 10, 10, false, nullptr), Error);
    EXPECT_THROW(plan_windows(0, 10, 10, true, nullptr), Error);
    EXPECT_THROW(plan_windows(100, 10, 11, false, nullptr), Error);
    EvalOptions o;
    o.ctx = 4096;
    EXPECT_THROW(resolve_eval_options(o, 512), Error);
    EXPECT_EQ(resolve_eval_options(EvalOptions{}, 512).ctx, 512);
    EXPECT_EQ(resolve_eval_options(EvalOptions{}, 8192).ctx, 2048);
    EXPECT_EQ(resolve_eval_options(EvalOptions{}, 8192).stride, 2048);
}
