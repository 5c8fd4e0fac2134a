#include "kernels/dequant_tolerance.h"

#include <torch/torch.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "quench_kernels/packed_common.h"

namespace quench::test {
namespace qk = quench::kernels;

namespace {

constexpr double kUnitRoundoff = 1.0 / 16777216.0;  // 2^-24, fp32 round to nearest

double gamma(int64_t n) { return n * kUnitRoundoff / (1 - n * kUnitRoundoff); }

int64_t log2_of(int64_t n) {
    int64_t k = 0;
    while ((int64_t(1) << k) < n) ++k;
    return k;
}

// The magnitude after a normalised block Hadamard (|H| has every entry 1 / sqrt(block)): along each of
// `lines` lines (line l starts at l * line_stride, its entries `step` apart, `len` of them), every block of
// `block` entries replaced by their sum / sqrt(block). Rows of [rows, cols]: (rows, cols, cols, 1); columns:
// (cols, 1, rows, cols).
void hadamard_magnitude(std::vector<double>& m, int64_t lines, int64_t line_stride, int64_t len, int64_t step,
                        int64_t block) {
    const double norm = std::sqrt(static_cast<double>(block));
    for (int64_t l = 0; l < lines; ++l)
        for (int64_t b0 = 0; b0 < len; b0 += block) {
            double* first = m.data() + l * line_stride + b0 * step;
            double s = 0;
            for (int64_t i = 0; i < block; ++i) s += first[i * step];
            for (int64_t i = 0; i < block; ++i) first[i * step] = s / norm;
        }
}

at::Tensor bound(std::vector<double>& m, int64_t rows, int64_t cols, int64_t chain) {
    return torch::from_blob(m.data(), {rows, cols}, torch::kDouble).clone() * (2 * gamma(chain));
}

// LiftQuant: w = act^-1 * sign * H (s_r * sum_k +-M[i][k]) over chunks of d columns. The D-term sums are
// where the orders differ (a BLAS GEMM in core); the Hadamard is butterflies on both sides (log2 h
// roundings); the row scale and the act_scale division one rounding each, 1 / sqrt(h) two (the constant and
// the product, where LibTorch multiplies by the reciprocal).
at::Tensor lift_tolerance(const qk::LiftView& w) {
    std::vector<double> row_abs(w.d, 0.0);
    for (int i = 0; i < w.d; ++i)
        for (int k = 0; k < w.D; ++k) row_abs[i] += std::fabs(qk::half_to_float(w.M[i * w.D + k]));
    std::vector<double> m(w.rows * w.cols);
    for (int64_t r = 0; r < w.rows; ++r) {
        const double s = std::fabs(qk::half_to_float(w.scales[r]));
        for (int64_t c = 0; c < w.cols; ++c) m[r * w.cols + c] = s * row_abs[c % w.d];
    }
    const int64_t block = w.cols & -w.cols;
    if (w.signs) hadamard_magnitude(m, w.rows, w.cols, w.cols, 1, block);
    if (w.act_scale)
        for (int64_t r = 0; r < w.rows; ++r)
            for (int64_t c = 0; c < w.cols; ++c) m[r * w.cols + c] /= std::fabs(qk::half_to_float(w.act_scale[c]));
    const int64_t chain = w.D + (w.signs ? log2_of(block) + 2 : 0) + 2;
    return bound(m, w.rows, w.cols, chain);
}

// LC-QAT: w = sv_r * (H_out (A q + b) H_in)[r][c] * su_c. Every sum is a GEMM in core: 4 products and b,
// then h_in and h_out terms in any order; the Hadamard entries fp32(1 / sqrt(h)) and the two scalings
// one rounding each.
at::Tensor lattice_tolerance(const qk::LatticeView& w) {
    std::vector<double> m(w.rows * w.cols);
    for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t j = 0; j < w.cols / 4; ++j) {
            const uint32_t idx = w.codes[r * (w.cols / 4) + j];
            const double q[4] = {double(idx >> 6), double((idx >> 4) & 3), double((idx >> 2) & 3), double(idx & 3)};
            for (int i = 0; i < 4; ++i) {
                double s = std::fabs(w.b[i]);
                for (int k = 0; k < 4; ++k) s += std::fabs(w.A[i * 4 + k]) * q[k];
                m[r * w.cols + 4 * j + i] = s;
            }
        }
    if (w.had_in > 1) hadamard_magnitude(m, w.rows, w.cols, w.cols, 1, w.had_in);
    if (w.had_out > 1) hadamard_magnitude(m, w.cols, 1, w.rows, w.cols, w.had_out);
    for (int64_t r = 0; r < w.rows; ++r) {
        const double sv = std::fabs(qk::half_to_float(w.sv[r]));
        for (int64_t c = 0; c < w.cols; ++c) m[r * w.cols + c] *= sv * std::fabs(qk::half_to_float(w.su[c]));
    }
    const int64_t chain = 5 + (w.had_in > 1 ? w.had_in + 1 : 0) + (w.had_out > 1 ? w.had_out + 1 : 0) + 2;
    return bound(m, w.rows, w.cols, chain);
}

}  // namespace

at::Tensor dequant_tolerance(const KernelView& v) {
    return std::visit(
        [](const auto& w) -> at::Tensor {
            using View = std::decay_t<decltype(w)>;
            if constexpr (std::is_same_v<View, qk::LiftView>) return lift_tolerance(w);
            else if constexpr (std::is_same_v<View, qk::LatticeView>) return lattice_tolerance(w);
            else return {};
        },
        v);
}

}  // namespace quench::test
