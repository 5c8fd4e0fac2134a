#include "model/rope.h"

#include <torch/torch.h>

#include <cmath>

namespace quench {

at::Tensor rope_inv_freq(const ModelConfig& c) {
    auto idx = torch::arange(0, c.head_dim, 2, torch::kFloat64);
    auto inv_freq = 1.0 / torch::pow(c.rope_theta, idx / static_cast<double>(c.head_dim));
    if (c.rope_scaling == RopeScaling::Llama3) {
        // Llama 3.1: keep high frequencies, divide low ones by the factor, blend in between.
        const double old_len = static_cast<double>(c.rope_original_max_positions);
        const double low_wavelen = old_len / c.rope_low_freq_factor;
        const double high_wavelen = old_len / c.rope_high_freq_factor;
        auto wavelen = 2.0 * M_PI / inv_freq;
        auto scaled = torch::where(wavelen > low_wavelen, inv_freq / c.rope_factor, inv_freq);
        auto smooth = (old_len / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
        auto smoothed = (1.0 - smooth) * scaled / c.rope_factor + smooth * scaled;
        auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
        inv_freq = torch::where(medium, smoothed, scaled);
    }
    return inv_freq.to(torch::kFloat32);
}

std::pair<at::Tensor, at::Tensor> rope_tables(const ModelConfig& c, const at::Tensor& inv_freq, int64_t seq) {
    auto pos = torch::arange(seq, torch::kFloat32);
    if (c.rope_scaling == RopeScaling::Linear) pos = pos / c.rope_factor;
    auto freqs = torch::outer(pos, inv_freq);
    auto emb = torch::cat({freqs, freqs}, -1);
    return {emb.cos(), emb.sin()};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    const int64_t half = x.size(-1) / 2;
    auto x1 = x.narrow(-1, 0, half);
    auto x2 = x.narrow(-1, half, half);
    auto rotated = torch::cat({-x2, x1}, -1);
    return x * cos + rotated * sin;
}

}  // namespace quench
