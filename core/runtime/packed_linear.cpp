#include "runtime/packed_linear.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <optional>
#include <variant>

#include "common/error.h"
#include "model/mapped_file.h"
#include "quant/kernel_views.h"
#include "quench_kernels/packed_int8.h"
#include "quench_kernels/packed_int8_lut.h"

namespace quench {

struct PackedLinear::State {
    QuantizedTensor q;
    KernelView view;
    kernels::CpuOptions options;
    bool int8 = false;
    std::optional<kernels::Int8Lut> lut;  // codes of 1 to 3 bits re-laid for the lookup GEMV (int8 only)

    void gemv(const float* x, float* y, int64_t batch, const kernels::CpuOptions& o) const {
        if (!int8) return kernel_gemv(view, x, y, batch, o);
        if (const auto* g = std::get_if<kernels::GridView>(&view))
            return lut ? kernels::grid_gemv_int8(*g, *lut, x, y, batch, o) : kernels::grid_gemv_int8(*g, x, y, batch, o);
        if (const auto* w = std::get_if<kernels::LiftView>(&view))
            return lut ? kernels::lift_gemv_int8(*w, *lut, x, y, batch, o) : kernels::lift_gemv_int8(*w, x, y, batch, o);
        const auto& l = std::get<kernels::LatticeView>(view);
        lut ? kernels::lattice_gemv_int8(l, *lut, x, y, batch, o) : kernels::lattice_gemv_int8(l, x, y, batch, o);
    }
};

PackedLinear::PackedLinear(QuantizedTensor q, int threads, PackedActivations acts) : s_(std::make_unique<State>()) {
    s_->q = std::move(q);  // the view points into these parts: build it only once they are in place
    s_->view = kernel_view(s_->q);
    s_->options.threads = threads;
    if (acts != PackedActivations::Int8) return;
    // The lookup GEMV where it applies (packed_int8_lut.h), else the int8 decode-and-multiply one. Without
    // AVX2 the lookup calls run the decode path on the stored codes, so no table is built there: it would
    // only hold the codes twice.
    const bool lookup = kernels::cpu_has_avx2();
    if (const auto* g = std::get_if<kernels::GridView>(&s_->view)) {
        s_->int8 = g->kind != kernels::GridKind::Ternary;
        if (lookup && kernels::has_int8_lut(*g)) s_->lut = kernels::int8_lut(*g, s_->options);
    } else if (const auto* w = std::get_if<kernels::LiftView>(&s_->view)) {
        s_->int8 = true;
        if (lookup) s_->lut = kernels::int8_lut(*w, s_->options);
    } else if (const auto* l = std::get_if<kernels::LatticeView>(&s_->view)) {
        s_->int8 = true;
        if (lookup) s_->lut = kernels::int8_lut(*l, s_->options);
    }
    // The re-laid codes take the place of the stored ones, which no kernel reads any more: give back their
    // pages (mapped from the checkpoint, they come back from the file if anything reads them).
    if (s_->lut) {
        const at::Tensor& codes = s_->q.part("codes").data;
        release_pages(codes.data_ptr(), codes.nbytes());
    }
}

bool PackedLinear::int8_activations() const { return s_->int8; }

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
        s_->gemv(xp, yp, n, s_->options);  // decode: the kernel threads over output rows
    } else {
        // Prefill: batches of rows in parallel on torch's pool, one thread each, which costs no thread
        // start per call (a small layer's call is shorter than starting a thread).
        kernels::CpuOptions one = s_->options;
        one.threads = 1;
        const int64_t batches = (n + kMaxBatch - 1) / kMaxBatch;
        at::parallel_for(0, batches, 1, [&](int64_t b0, int64_t b1) {
            for (int64_t bi = b0; bi < b1; ++bi) {
                const int64_t r = bi * kMaxBatch, b = std::min(kMaxBatch, n - r);
                s_->gemv(xp + r * in, yp + r * out, b, one);
            }
        });
    }
    shape.back() = out;
    return y.reshape(shape);
}

}  // namespace quench
