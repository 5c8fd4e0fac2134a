#include "analysis/block_walk.h"

#include <torch/torch.h>

#include "common/error.h"
#include "common/progress.h"

namespace quench {

BlockWalk::BlockWalk(const LlamaModel& model, const std::vector<int32_t>& tokens, CaptureOptions options,
                     int64_t memory_cap, const std::string& spill_dir)
    : model_(model), options_(options), states_(memory_cap, spill_dir) {
    torch::NoGradGuard no_grad;
    const at::Tensor all = capture_windows(model, tokens, options_);
    windows_ = all.size(0);
    for (int64_t first = 0; first < windows_; first += options_.batch)
        states_.append(model.embed(all.narrow(0, first, std::min(options_.batch, windows_ - first))));
}

std::map<std::size_t, LayerInputStats> BlockWalk::step(const std::vector<std::size_t>& capture, LlamaModel::Weights which,
                                                       bool advance, ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    const bool past_last = position_ >= model_.num_blocks();
    if (past_last && advance) throw Error("block walk: there is no block after the last one");
    const std::size_t head = model_.layers().size() - 1;
    for (std::size_t l : capture) {
        if (l >= model_.layers().size()) throw Error("block walk: layer index " + std::to_string(l) + " out of range");
        const bool here = past_last ? l == head && model_.layers().at(l).block < 0 : model_.layers().at(l).block == position_;
        if (!here)
            throw Error("block walk: layer '" + model_.layers().at(l).name + "' is not in " +
                        (past_last ? std::string("the head") : "block " + std::to_string(position_)));
    }
    const auto n_batches = static_cast<int64_t>(states_.size());
    InputStatsAccumulator acc(model_.layers(), capture, options_, n_batches);
    const std::string what = past_last ? std::string("head") : "block " + std::to_string(position_);
    for (int64_t b = 0; b < n_batches; ++b) {
        prog.check();
        const at::Tensor h = states_.get(static_cast<std::size_t>(b));
        if (past_last) {
            if (!capture.empty()) acc.hook()(head, model_.final_norm(h).reshape({-1, h.size(-1)}));
        } else {
            at::Tensor out = model_.block_forward(position_, h, nullptr, which, capture.empty() ? nullptr : &acc.hook());
            if (advance) states_.set(static_cast<std::size_t>(b), out);
        }
        prog.report(static_cast<double>(b + 1) / static_cast<double>(n_batches), what);
    }
    if (advance) ++position_;
    return acc.finish();
}

}  // namespace quench
