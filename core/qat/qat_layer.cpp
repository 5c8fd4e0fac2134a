#include "qat/qat_layer.h"

#include "common/error.h"

namespace quench {

bool qat_supports(const std::string& codec) { return codec == "paretoq" || codec == "lcqat" || codec == "liftquant"; }

std::unique_ptr<QatLayer> make_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                         const QatLayerOptions& options) {
    const std::string& c = ptq.spec.codec();
    if (c == "paretoq") return make_paretoq_qat_layer(ptq, W_fp, options);
    if (c == "lcqat") return make_lcqat_qat_layer(ptq);
    if (c == "liftquant") return make_liftquant_qat_layer(ptq);
    throw Error("qat: codec '" + ptq.spec.to_string() + "' has no QAT form (paretoq, lcqat or liftquant)");
}

}  // namespace quench
