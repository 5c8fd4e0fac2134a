#pragma once
// The one interface every quantization method implements (one file per codec in core/quant).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "quant/quantized_tensor.h"

namespace quench {

class ProgressSink;

// Calibration statistics of a layer's inputs, from analysis/layer_capture.h. Either may be undefined.
struct CalibStats {
    at::Tensor hessian;    // [cols, cols] mean x^T x over calibration rows (GPTQ, LDLQ)
    at::Tensor act_scale;  // [cols] mean |x| per input channel (activation-aware scaling)
};

struct QuantizeContext {
    const CalibStats* calib = nullptr;
    uint64_t seed = 0;  // every random choice (Hadamard signs, restarts) derives from it
    ProgressSink* progress = nullptr;
};

struct BitsEstimate {
    double code_bits_per_weight = 0;
    double total_bits_per_weight = 0;  // of this weight alone: every part, shared ones included
    // Bits of the parts stored once per model for every layer with this setting (LiftQuant's M, QAM-W's
    // codebook, LC-QAT's A and b); in total_bits_per_weight, counted once in a model's total.
    int64_t shared_bits = 0;
};

class Codec {
public:
    explicit Codec(CodecSpec spec) : spec_(std::move(spec)) {}
    virtual ~Codec() = default;
    const CodecSpec& spec() const { return spec_; }

    virtual bool needs_hessian() const { return false; }
    virtual bool needs_act_scale() const { return false; }
    // Bits a [rows, cols] weight will cost, without quantizing (allocation, GUI forms, export estimates).
    // Throws quench::Error when the shape is unsupported (e.g. a group size that does not divide cols).
    virtual BitsEstimate estimate_bits(int64_t rows, int64_t cols) const = 0;
    // The transform this setting chose for a [rows, cols] weight, for the run record and the tables: the block
    // Hadamard sizes follow the widths ("hadamard 64 x 128" for LC-QAT's input and output sides). "" for none.
    virtual std::string transform_note(int64_t /*rows*/, int64_t /*cols*/) const { return {}; }
    // W: [rows, cols] fp32 CPU. Deterministic for a given spec, W, calibration and seed.
    virtual QuantizedTensor quantize(const at::Tensor& W, const QuantizeContext& ctx) const = 0;
    // Reconstructs the fp32 weight from q's parts only.
    virtual at::Tensor dequantize(const QuantizedTensor& q) const = 0;

private:
    CodecSpec spec_;
};

// Builds the codec a spec names (through the registry).
std::unique_ptr<Codec> make_codec(const CodecSpec& spec);
inline std::unique_ptr<Codec> make_codec(const std::string& spec) { return make_codec(CodecSpec::parse(spec)); }

}  // namespace quench
