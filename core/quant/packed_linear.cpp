#include "quant/packed_linear.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "common/error.h"
#include "quant/kernel_views.h"

namespace quench {

struct PackedLinear::State {
    QuantizedTensor q;
    KernelView view;
    kernels::CpuOptions options;
};

PackedLinear::PackedLinear(QuantizedTensor q, int threads) : s_(std::make_unique<State>()) {
    s_->q = std::move(q);  // the view points into these parts: build it only once they are in place
    s_->view = kernel_view(s_->q);
    s_->options.threads = threads;
}

PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;
PackedLinear& PackedLinear::operator=(PackedLinear&&) noexcept = default;
PackedLinear::~PackedLinear() = default;

int64_t PackedLinear::out_features() const { return s_->q.rows; }
int64_t PackedLinear::in_features() const { return s_->q.cols; }
const QuantizedTensor& PackedLinear::tensor() const { return s_->q; }

at::Tensor PackedLinear::forward(const at::Tensor& x) const {
    const int64_t in = in_features(), out = out_features();
    if (x.dim() < 1 || x.size(-1) != in)
        throw Error(s_->q.spec.to_string() + ": packed linear: input has " + std::to_string(x.dim() ? x.size(-1) : 0) +
                    " features, the layer takes " + std::to_string(in));
    auto shape = x.sizes().vec();
    const auto flat = x.reshape({-1, in}).to(torch::kFloat32).contiguous();
    const int64_t n = flat.size(0);
    auto y = torch::empty({n, out}, torch::kFloat32);
    const float* xp = flat.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    constexpr int64_t kMaxBatch = 8;
    if (n <= kMaxBatch) {
        kernel_gemv(s_->view, xp, yp, n, s_->options);  // decode: the kernel threads over output rows
    } else {
        // Prefill: batches of rows in parallel on torch's pool, one thread each, which costs no thread
        // start per call (a small layer's call is shorter than starting a thread).
        kernels::CpuOptions one = s_->options;
        one.threads = 1;
        const int64_t batches = (n + kMaxBatch - 1) / kMaxBatch;
        at::parallel_for(0, batches, 1, [&](int64_t b0, int64_t b1) {
            for (int64_t bi = b0; bi < b1; ++bi) {
                const int64_t r = bi * kMaxBatch, b = std::min(kMaxBatch, n - r);
                kernel_gemv(s_->view, xp + r * in, yp + r * out, b, one);
            }
        });
    }
    shape.back() = out;
    return y.reshape(shape);
}

}  // namespace quench
