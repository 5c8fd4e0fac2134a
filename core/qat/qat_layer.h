#pragma once
// QAT layers by codec: make_qat_layer builds the trainable form a codec's row declares
// (CodecTraits::qat in quant/codec_registry.h; the interface is quant/trainable_layer.h).
#include <ATen/core/Tensor.h>

#include <memory>

#include "quant/codec_registry.h"
#include "quant/trainable_layer.h"

namespace quench {

// From a PTQ result of a codec with a QAT form (qat_codec_names()) and the layer's full-precision weight
// W_fp [rows, cols]. Throws quench::Error naming the codec when it has no QAT form.
std::unique_ptr<QatLayer> make_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                         const QatLayerOptions& options = {});

}  // namespace quench
