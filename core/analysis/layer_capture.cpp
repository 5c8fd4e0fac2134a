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

std::map<std::size_t, LayerInputStats> capture_layer_inputs(const LlamaModel& model, const std::vector<std::size_t>& layers,
                                                            const std::vector<int32_t>& tokens, CaptureOptions o,
                                                            ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    if (o.ctx == 0) o.ctx = std::min<int64_t>(model.config().max_position_embeddings, 512);
    if (o.ctx < 1 || o.batch < 1) throw Error("layer capture: ctx and batch must be positive");
    std::vector<int32_t> stream = tokens;
    if (o.max_tokens > 0 && static_cast<int64_t>(stream.size()) > o.max_tokens) stream.resize(o.max_tokens);
    const int64_t n_windows = static_cast<int64_t>(stream.size()) / o.ctx;
    if (n_windows == 0)
        throw Error("layer capture: calibration text has " + std::to_string(stream.size()) + " tokens, fewer than ctx " +
                    std::to_string(o.ctx));

    std::map<std::size_t, LayerInputStats> stats;
    std::vector<at::Tensor> abs_sum(model.layers().size());
    for (std::size_t l : layers) {
        if (l >= model.layers().size()) throw Error("layer capture: layer index " + std::to_string(l) + " out of range");
        const int64_t in = model.layers().at(l).in_features;
        LayerInputStats& s = stats[l];
        if (o.hessian) s.xtx = torch::zeros({in, in}, torch::kFloat32);
        abs_sum[l] = torch::zeros({in}, torch::kFloat64);
    }
    const int64_t n_batches = (n_windows + o.batch - 1) / o.batch;
    // Sample rows evenly from every batch so the sample spans the whole calibration text.
    const int64_t rows_per_batch = o.sample_rows > 0 ? (o.sample_rows + n_batches - 1) / n_batches : 0;
    std::vector<std::vector<at::Tensor>> samples(model.layers().size());

    LinearInputHook hook = [&](std::size_t layer, const at::Tensor& x) {
        auto it = stats.find(layer);
        if (it == stats.end()) return;
        LayerInputStats& s = it->second;
        if (s.xtx.defined()) s.xtx.addmm_(x.t(), x);
        abs_sum[layer] += x.abs().sum(0).to(torch::kFloat64);
        if (rows_per_batch > 0) {
            const int64_t take = std::min<int64_t>(rows_per_batch, x.size(0));
            auto idx = torch::linspace(0, x.size(0) - 1, take).round().to(torch::kLong);
            samples[layer].push_back(x.index_select(0, idx).clone());
        }
        s.rows += x.size(0);
    };
    for (int64_t b = 0; b < n_batches; ++b) {
        prog.check();
        const int64_t first = b * o.batch, count = std::min(o.batch, n_windows - first);
        auto input = torch::empty({count, o.ctx}, torch::kLong);
        auto acc = input.accessor<int64_t, 2>();
        for (int64_t r = 0; r < count; ++r)
            for (int64_t p = 0; p < o.ctx; ++p) acc[r][p] = stream[(first + r) * o.ctx + p];
        model.forward_hidden(input, &hook);
        prog.report(static_cast<double>(b + 1) / n_batches, "capturing layer inputs");
    }
    for (auto& [l, s] : stats) {
        s.abs_mean = (abs_sum[l] / static_cast<double>(std::max<int64_t>(s.rows, 1))).to(torch::kFloat32);
        if (!samples[l].empty()) {
            s.sample = torch::cat(samples[l], 0);
            if (s.sample.size(0) > o.sample_rows) s.sample = s.sample.narrow(0, 0, o.sample_rows).clone();
        }
    }
    return stats;
}

}  // namespace quench
