#pragma once
// What each built-in codec's files export to the codec table (codec_registry.cpp): its parameter schema,
// its factory and example specs (quant/<codec>.cpp), and its QAT form where it has one (qat/*.cpp).
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "quant/codec_spec.h"
#include "quant/trainable_layer.h"

namespace quench {

class Codec;
struct BitsEstimate;

#define QUENCH_DECLARE_CODEC(prefix)                                 \
    const std::vector<ParamDef>& prefix##_params();                  \
    std::unique_ptr<Codec> make_##prefix##_codec(const CodecSpec&);  \
    const std::vector<std::string>& prefix##_examples();

QUENCH_DECLARE_CODEC(rtn)
QUENCH_DECLARE_CODEC(gptq)
QUENCH_DECLARE_CODEC(paretoq)
QUENCH_DECLARE_CODEC(qamw)
QUENCH_DECLARE_CODEC(liftquant)
QUENCH_DECLARE_CODEC(lcqat)

#undef QUENCH_DECLARE_CODEC

// QAT forms (QatLayerFactory): qat/paretoq_ste.cpp, qat/liftquant_ste.cpp, qat/lcqat_affine.cpp.
std::unique_ptr<QatLayer> make_paretoq_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                                 const QatLayerOptions& options);
std::unique_ptr<QatLayer> make_liftquant_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                                   const QatLayerOptions& options);
std::unique_ptr<QatLayer> make_lcqat_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                               const QatLayerOptions& options);

// Bits of a trained layer (CodecTraits::qat_bits): qat/liftquant_ste.cpp, qat/lcqat_affine.cpp.
BitsEstimate liftquant_qat_bits(const Codec& ptq, int64_t rows, int64_t cols);
BitsEstimate lcqat_qat_bits(const Codec& ptq, int64_t rows, int64_t cols);

}  // namespace quench
