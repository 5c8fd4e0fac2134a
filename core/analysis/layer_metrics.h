#pragma once
// How much one quantized layer differs from its original: in the weights and in its outputs on
// calibration inputs. These are the per-layer numbers the CLI table, the GUI bars and the store share.
#include <ATen/core/Tensor.h>

namespace quench {

struct LayerMetrics {
    double weight_mse = 0;         // mean (W - W')^2
    double rel_fro_error = 0;      // ||W - W'||_F / ||W||_F
    double sqnr_db = 0;            // 10 log10(||W||^2 / ||W - W'||^2)
    double output_rel_error = -1;  // ||X (W - W')^T||^2 / ||X W^T||^2 on sample rows X; -1 without inputs
    double code_bits_per_weight = 0;
    double total_bits_per_weight = 0;
    double seconds = 0;            // time to quantize
};

// W, Wq: [rows, cols]; inputs: [n, cols] sample rows (may be undefined). Bits and seconds are left to the caller.
LayerMetrics compare_weights(const at::Tensor& W, const at::Tensor& Wq, const at::Tensor& inputs);

}  // namespace quench
