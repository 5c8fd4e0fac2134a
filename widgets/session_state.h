#pragma once
// Private to the session's sources (workbench_session.cpp, session_jobs.cpp, session_qat.cpp): the state
// its jobs share and the helpers they all use. Includes torch through core's headers: never include it from a header.
#include <QString>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analysis/model_eval.h"
#include "jobs/sensitivity.h"
#include "analysis/text_data.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec.h"
#include "io/export_plan.h"
#include "jobs/model_quantizer.h"
#include "jobs/recorded_jobs.h"
#include "jobs/run_records.h"
#include "workbench_session.h"

namespace quench::gui {

inline std::string utf8(const QString& s) { return s.toStdString(); }

// Tokens of a data file as the CLI takes them: BOS at the start, cut to `limit` (0 = all).
inline std::vector<int32_t> file_tokens(const Tokenizer& tok, const QString& path, qint64 limit) {
    if (path.isEmpty()) return {};
    return tokenize_text_file(tok, utf8(path), true, limit);
}

// "quench (GUI): <what>", the command line a GUI run records.
inline std::string gui_command(const std::string& what) { return "quench (GUI): " + what; }

// quench::run_recorded (jobs/run_records.h) with a GUI command line; *run_id gets the run's id as soon as it
// begins. The records themselves are written by core's job functions (jobs/recorded_jobs.h), as for quench-cli.
inline void run_recorded(const std::string& project, const char* kind, const std::string& what,
                         std::shared_ptr<std::string> run_id, const std::function<void(RunWriter*)>& work) {
    quench::run_recorded(project, current_run_info(kind, gui_command(what)), work, [&](const std::string& id) {
        if (run_id) *run_id = id;
    });
}

inline quench::ExportFormat coreFormat(ExportFormat f) {
    switch (f) {
    case ExportFormat::Packed: return quench::ExportFormat::Packed;
    case ExportFormat::Hf: return quench::ExportFormat::Hf;
    case ExportFormat::Gguf: return quench::ExportFormat::Gguf;
    }
    return quench::ExportFormat::Packed;
}

struct WorkbenchSession::State {
    std::shared_ptr<LlamaModel> model;
    std::shared_ptr<Tokenizer> tok;
    LayerRegistry no_layers;
    std::vector<LayerResult> results;
    std::map<std::size_t, QuantizedTensor> tensors;
    TextInput ptq_calib;  // the calibration text (and tokens) tensors were quantized with; QAT runs record it
    double total_bpw = 0;
    Measurements measurements;
    std::string measurements_key;  // the data settings the measurements were taken under
    bool has_kl = false;
    KlReport kl;
    std::vector<int32_t> kl_tokens;  // the tokens kl scored
};

}  // namespace quench::gui
