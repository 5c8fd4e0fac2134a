#pragma once
// What the packed kernel tests (test_packed_*.cpp) share: codec cases quantized by core with their core
// dequantization as the reference, the CPU paths to run, the GEMV reference in double, the bit-exact and
// tolerance checks, the real-model sweep and, with CUDA, the device-against-CPU comparison. Views come from
// core's kernel_views.h and are dispatched on their family, so one check serves every kernel.
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "quant/kernel_views.h"
#include "quant/quantized_tensor.h"
#include "quench_kernels/packed_common.h"
#include "support/weights.h"

namespace quench::test {

// A weight quantized by core: spec, stored tensor and core's Codec::dequantize of it.
struct PackedCase {
    std::string spec;
    QuantizedTensor q;
    at::Tensor ref;
};

struct CaseShape {
    std::string spec;
    int64_t rows = 0, cols = 0;
};

// Quantizes W with spec (QuantizeContext seed quantize_seed). Calibration is drawn from `seed`: a random
// Hessian when the codec needs one, random act_scale in [0.05, 2.05) when it needs those.
PackedCase make_case(const std::string& spec, const at::Tensor& W, uint64_t seed, uint64_t quantize_seed);
// Case i (from 0) uses trained_like weights and calibration seeded i + 1, quantize seed (i + 1) * factor.
std::vector<PackedCase> make_cases(const std::vector<CaseShape>& table, uint64_t quantize_seed_factor = 1);

// How a kernel family's GEMV is checked: |y - W x| <= tol * sum_c |W[r][c] x[c]| (W core's dequantized
// weight, in double), x drawn with seed x_seed + batch on the CPU and cuda_x_seed + batch on the device.
struct GemvCheck {
    double tol = 0;
    uint64_t x_seed = 0, cuda_x_seed = 0;
};

// Scalar with 1 and 3 threads, and when the CPU has it AVX2 with 1 and avx2_threads threads.
std::vector<kernels::CpuOptions> cpu_paths(int avx2_threads);
std::string path_name(const kernels::CpuOptions& o);

at::Tensor random_x(int64_t batch, int64_t cols, uint64_t seed);
// Largest |y - W x| / sum_c |W[r][c] x[c]| over the outputs, in double.
double gemv_rel_error(const at::Tensor& W, const at::Tensor& x, const std::vector<float>& y);

// The CPU kernels of a view's family.
void dequantize_f32(const KernelView& v, float* out, const kernels::CpuOptions& o);
void dequantize_f16(const KernelView& v, uint16_t* out, const kernels::CpuOptions& o);
void gemv(const KernelView& v, const float* x, float* y, int64_t batch, const kernels::CpuOptions& o);

// fp32 dequantization on path o equals the scalar single-thread kernel bit for bit, fp16 equals that fp32
// result rounded, and both are within dequant_tolerance of c.ref (bit for bit where it says so).
void expect_dequant_matches(const PackedCase& c, const kernels::CpuOptions& o);
void expect_gemv_close(const PackedCase& c, const kernels::CpuOptions& o, int64_t batch, const GemvCheck& g);

// Every case on every path: dequantization matches; GEMV close for each batch.
void expect_dequant_matches(const std::vector<PackedCase>& cases, const std::vector<kernels::CpuOptions>& paths);
void expect_gemv_close(const std::vector<PackedCase>& cases, const std::vector<kernels::CpuOptions>& paths,
                       const std::vector<int64_t>& batches, const GemvCheck& g);

// Each spec on each of the real model's 14 model.layers.* weights (calibration and quantize seed: the layer
// index, the quantize seed times quantize_seed_factor): dequantization matches, GEMV at batch 1 and 8, every path.
void expect_agrees_on_real_model(const std::vector<std::string>& specs, const std::vector<kernels::CpuOptions>& paths,
                                 const GemvCheck& g, uint64_t quantize_seed_factor = 1);

// The std::invalid_argument message fn throws, or "" when it throws none.
std::string invalid_argument_of(const std::function<void()>& fn);
// Success when `message` contains `part`; the failure shows the whole message.
::testing::AssertionResult mentions(const std::string& message, const std::string& part);

// One bad edit of a view and the text the kernel's std::invalid_argument must mention.
template <typename View>
using ViewEdit = std::pair<std::function<void(View&)>, std::string>;

// Each edit, applied to a copy of `good`, makes run(view) throw std::invalid_argument mentioning its text.
template <typename View, typename Run>
void expect_rejected(const View& good, Run run, const std::vector<ViewEdit<View>>& edits) {
    for (const auto& [edit, text] : edits) {
        View v = good;
        edit(v);
        EXPECT_TRUE(mentions(invalid_argument_of([&] { run(v); }), text));
    }
}

#ifdef QUENCH_HAVE_CUDA
// The CUDA kernels on a device copy of c's parts: both dequantizations equal the CPU kernels' bit for bit,
// the GEMV meets g for each batch.
void expect_cuda_matches_cpu(const PackedCase& c, const std::vector<int64_t>& batches, const GemvCheck& g);
#endif

}  // namespace quench::test
