#include "analysis/layer_capture.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"
#include "common/progress.h"

namespace quench {

at::Tensor LayerInputStats::hessian() const {
    if (!xtx.defined() || rows == 0) throw Error("layer capture: no Hessian was accumulated");
    return xtx / static_cast<double>(rows);
}

InputStatsAccumulator::InputStatsAccumulator(const LayerRegistry& registry, const std::vector<std::size_t>& layers,
                                             const CaptureOptions& o, int64_t n_batches)
    : sample_rows_(o.sample_rows) {
    for (std::size_t l : layers) {
        if (l >= registry.size()) throw Error("layer capture: layer index " + std::to_string(l) + " out of range");
        const int64_t in = registry.at(l).in_features;
        LayerInputStats& s = stats_[l];
        if (o.hessian) s.xtx = torch::zeros({in, in}, torch::kFloat32);
        abs_sum_[l] = torch::zeros({in}, torch::kFloat64);
    }
    // Sample rows evenly from every batch so the sample spans the whole calibration text.
    rows_per_batch_ = o.sample_rows > 0 ? (o.sample_rows + n_batches - 1) / std::max<int64_t>(n_batches, 1) : 0;
    hook_ = [this](std::size_t layer, const at::Tensor& x) {
        auto it = stats_.find(layer);
        if (it == stats_.end()) return;
        LayerInputStats& s = it->second;
        if (s.xtx.defined()) s.xtx.addmm_(x.t(), x);
        abs_sum_[layer] += x.abs().sum(0).to(torch::kFloat64);
        if (rows_per_batch_ > 0) {
            const int64_t take = std::min<int64_t>(rows_per_batch_, x.size(0));
            auto idx = torch::linspace(0, x.size(0) - 1, take).round().to(torch::kLong);
            samples_[layer].push_back(x.index_select(0, idx).clone());
        }
        s.rows += x.size(0);
    };
}

std::map<std::size_t, LayerInputStats> InputStatsAccumulator::finish() {
    for (auto& [l, s] : stats_) {
        s.abs_mean = (abs_sum_[l] / static_cast<double>(std::max<int64_t>(s.rows, 1))).to(torch::kFloat32);
        auto& rows = samples_[l];
        if (!rows.empty()) {
            s.sample = torch::cat(rows, 0);
            if (s.sample.size(0) > sample_rows_) s.sample = s.sample.narrow(0, 0, sample_rows_).clone();
        }
    }
    return std::move(stats_);
}

at::Tensor capture_windows(const LlamaModel& model, const std::vector<int32_t>& tokens, CaptureOptions& o) {
    if (o.ctx == 0) o.ctx = std::min<int64_t>(model.config().max_position_embeddings, 512);
    if (o.ctx < 1 || o.batch < 1) throw Error("layer capture: ctx and batch must be positive");
    int64_t n = static_cast<int64_t>(tokens.size());
    if (o.max_tokens > 0) n = std::min(n, o.max_tokens);
    const int64_t n_windows = n / o.ctx;
    if (n_windows == 0)
        throw Error("layer capture: calibration text has " + std::to_string(n) + " tokens, fewer than ctx " +
                    std::to_string(o.ctx));
    at::Tensor out = torch::empty({n_windows, o.ctx}, torch::kLong);
    auto acc = out.accessor<int64_t, 2>();
    for (int64_t r = 0; r < n_windows; ++r)
        for (int64_t p = 0; p < o.ctx; ++p) acc[r][p] = tokens[static_cast<std::size_t>(r * o.ctx + p)];
    return out;
}

std::map<std::size_t, LayerInputStats> capture_layer_inputs(const LlamaModel& model, const std::vector<std::size_t>& layers,
                                                            const std::vector<int32_t>& tokens, CaptureOptions o,
                                                            ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    const at::Tensor windows = capture_windows(model, tokens, o);
    const int64_t n_windows = windows.size(0);
    const int64_t n_batches = (n_windows + o.batch - 1) / o.batch;
    InputStatsAccumulator acc(model.layers(), layers, o, n_batches);
    for (int64_t b = 0; b < n_batches; ++b) {
        prog.check();
        const int64_t first = b * o.batch, count = std::min(o.batch, n_windows - first);
        model.forward_hidden(windows.narrow(0, first, count), &acc.hook());
        prog.report(static_cast<double>(b + 1) / n_batches, "capturing layer inputs");
    }
    return acc.finish();
}

}  // namespace quench
