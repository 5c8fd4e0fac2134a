#include "qat/qat_layer.h"

#include "common/error.h"

namespace quench {

std::unique_ptr<QatLayer> make_qat_layer(const QuantizedTensor& ptq, const at::Tensor& W_fp,
                                         const QatLayerOptions& options) {
    const CodecTraits* row = find_codec(ptq.spec.codec());
    if (!row || !row->qat)
        throw Error("qat: codec '" + ptq.spec.to_string() + "' has no QAT form (" + qat_codec_names() + ")");
    return row->qat(ptq, W_fp, options);
}

}  // namespace quench
