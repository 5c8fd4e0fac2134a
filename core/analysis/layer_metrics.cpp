#include "analysis/layer_metrics.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace quench {

LayerMetrics compare_weights(const at::Tensor& W, const at::Tensor& Wq, const at::Tensor& inputs) {
    torch::NoGradGuard no_grad;
    LayerMetrics m;
    auto w = W.to(torch::kFloat64), d = Wq.to(torch::kFloat64) - w;
    const double err2 = d.pow(2).sum().item<double>(), ref2 = w.pow(2).sum().item<double>();
    m.weight_mse = err2 / static_cast<double>(W.numel());
    m.rel_fro_error = ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
    m.sqnr_db = err2 > 0 ? 10.0 * std::log10(ref2 / err2) : std::numeric_limits<double>::infinity();
    if (inputs.defined() && inputs.numel() > 0) {
        auto x = inputs.to(torch::kFloat64);
        const double out_ref = x.matmul(w.t()).pow(2).sum().item<double>();
        const double out_err = x.matmul(d.t()).pow(2).sum().item<double>();
        m.output_rel_error = out_ref > 0 ? out_err / out_ref : 0.0;
    }
    return m;
}

}  // namespace quench
