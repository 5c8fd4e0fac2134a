#pragma once
// Private to the session's sources (workbench_session.cpp, session_qat.cpp): the state its jobs share and
// the helpers they all use. Includes torch through core's headers: never include it from a header.
#include <QString>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analysis/model_eval.h"
#include "analysis/sensitivity.h"
#include "analysis/text_data.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "quant/model_quantizer.h"
#include "workbench_session.h"

namespace quench::gui {

inline std::string utf8(const QString& s) { return s.toStdString(); }

// Tokens of a data file as the CLI takes them: BOS at the start, cut to `limit` (0 = all).
inline std::vector<int32_t> file_tokens(const Tokenizer& tok, const QString& path, qint64 limit) {
    if (path.isEmpty()) return {};
    return tokenize_text_file(tok, utf8(path), true, limit);
}

// Puts the stored quantized weights back into the model (after a job that restored or changed them).
inline void reapply(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& tensors) {
    for (const auto& [index, q] : tensors) model.replace_weight(index, make_codec(q.spec)->dequantize(q));
}

struct WorkbenchSession::State {
    std::shared_ptr<LlamaModel> model;
    std::shared_ptr<Tokenizer> tok;
    LayerRegistry no_layers;
    std::vector<LayerResult> results;
    std::map<std::size_t, QuantizedTensor> tensors;
    double total_bpw = 0;
    Measurements measurements;
    std::string measurements_key;  // the data settings the measurements were taken under
    bool has_kl = false;
    KlReport kl;
    std::vector<int32_t> kl_tokens;  // the tokens kl scored
};

}  // namespace quench::gui
