#pragma once
// The trainable form of a codec, as the codec table (quant/codec_registry.h) declares it: a quantized linear
// layer whose forward pass is differentiable in its quantization parameters (and latent weights), what QAT
// trains in place of a stored weight. Each one starts from a PTQ result of its codec so that step 0 is the
// PTQ model, and exports back to a QuantizedTensor of the same codec, so a trained layer is saved, measured
// and exported exactly like a PTQ result.
//
// The interface lives here, below qat/, so that a codec's row can point at its factory; the factories of the
// built-in codecs are defined in qat/ (paretoq_ste.cpp, lcqat_affine.cpp, liftquant_ste.cpp), the trainer
// (qat/qat_trainer.h) reaches them through make_qat_layer (qat/qat_layer.h).
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "quant/qat_defaults.h"
#include "quant/quantized_tensor.h"

namespace quench {

// Which optimizer group a parameter joins: latent weights move at the weight learning rate, everything
// else (row/column scales, affine maps) at the scale learning rate.
enum class QatParamKind { Latent = 1, Scale };

struct QatParam {
    std::string name;  // "alpha", "W_lat", "A", ...
    QatParamKind kind;
    at::Tensor tensor;  // requires_grad, owned by the layer
};

class QatLayer {
public:
    virtual ~QatLayer() = default;
    // x [..., in] -> [..., out]; builds a graph when grad mode is on.
    virtual at::Tensor forward(const at::Tensor& x) const = 0;
    virtual std::vector<QatParam> params() const = 0;
    // The current codes and scales in the codec's stored form (fp16 parts rounded as the codec stores them).
    virtual QuantizedTensor export_tensor() const = 0;
};

struct QatLayerOptions {
    // ParetoQ at b=2 only: train the 2-bit LSQ grid alpha*{-2,-1,0,1} instead of SEQ (the paper's SEQ vs LSQ
    // comparison); exported as the identical rtn:b=2,g=0,sym grid.
    bool paretoq_lsq2 = false;
};

// A codec's QAT form: from a PTQ result of the codec and the layer's full-precision weight W_fp [rows, cols].
// Throws quench::Error naming the spec when the PTQ result does not fit.
using QatLayerFactory = std::unique_ptr<QatLayer> (*)(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                                      const QatLayerOptions& options);

}  // namespace quench
