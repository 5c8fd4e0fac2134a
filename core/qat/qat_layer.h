#pragma once
// A quantized linear layer whose forward pass is differentiable in its quantization parameters (and latent
// weights): what QAT trains in place of a stored weight. Each one starts from a PTQ result of its codec so
// that step 0 is the PTQ model, and exports back to a QuantizedTensor of the same codec, so a trained layer
// is saved, measured and exported exactly like a PTQ result.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

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

// From a PTQ result of codec paretoq, lcqat or liftquant and the layer's full-precision weight W_fp
// [rows, cols]. Throws quench::Error naming the codec when it has no QAT form.
std::unique_ptr<QatLayer> make_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                         const QatLayerOptions& options = {});
// Whether make_qat_layer accepts this codec name.
bool qat_supports(const std::string& codec);

// The per-family constructors make_qat_layer dispatches to (paretoq_ste.cpp, lcqat_affine.cpp, liftquant_ste.cpp).
std::unique_ptr<QatLayer> make_paretoq_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                                 const QatLayerOptions& options);
std::unique_ptr<QatLayer> make_lcqat_qat_layer(const QuantizedTensor& ptq);
std::unique_ptr<QatLayer> make_liftquant_qat_layer(const QuantizedTensor& ptq);

}  // namespace quench
