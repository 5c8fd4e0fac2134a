#pragma once
// The jobs both front ends run, one function per run kind: each takes the loaded model (and its tokenizer),
// the job's options, a progress sink and the run it records into (nullptr: not recorded), does the work,
// writes the run's records and returns the result. quench-cli and the workbench only gather options, load,
// and show what comes back, so the same job records the same run from either of them (the field-by-field
// check is tests/widgets/test_run_parity.cpp). Records are laid out as docs/hdf5-schema.md says; the run
// itself (begin, commit, fail) is run_recorded (jobs/run_records.h).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/model_eval.h"
#include "io/export_plan.h"
#include "io/gguf_export.h"
#include "io/hf_export.h"
#include "io/packed_checkpoint.h"
#include "jobs/model_quantizer.h"
#include "jobs/sensitivity.h"
#include "qat/qat_trainer.h"

namespace quench {

class LlamaModel;
class Measurements;
class ProgressSink;
class RunWriter;
class Tokenizer;
struct Allocation;

// RunInfo::kind of each job's run.
inline constexpr const char* kQuantizeRun = "quantize";
inline constexpr const char* kApplyRun = "apply";
inline constexpr const char* kSensitivityRun = "sensitivity";
inline constexpr const char* kEvalRun = "eval";
inline constexpr const char* kExportRun = "export";
inline constexpr const char* kQatRun = "qat";

// A text a job reads, tokenized with BOS at its start and cut to `tokens` (0: all of it).
struct TextInput {
    std::string path;  // empty: none
    int64_t tokens = 0;
};

// ---------------------------------------------------------------------------------------- quantize, apply

struct QuantizeJobOptions {
    TextInput calib;           // GPTQ Hessians, activation scales, output error; no path: none
    std::string eval;          // text for the KL against full precision; empty: not evaluated
    int64_t eval_tokens = 0;   // evaluate only the first N tokens (0: all)
    int64_t ctx = 0;           // window length for calibration and evaluation (0: the model's default)
    uint64_t seed = 0;         // QuantizeOptions::seed
    CalibInputs calib_inputs = CalibInputs::Quantized;  // QuantizeOptions::calib_inputs
    bool with_tensors = true;  // record the quantized tensors, not only their metrics
};

struct QuantizeJobResult {
    QuantizeResult result;
    int64_t calib_tokens = 0;  // calibration tokens used
    bool has_kl = false;
    KlReport kl;
    std::vector<int32_t> kl_tokens;  // the tokens kl scored
};

// Quantizes the plan's layers from their original weights (the model's earlier replacements are restored
// first, and again when the job fails or is cancelled) and evaluates when there is evaluation text. Records
// attributes codec (the plan's distinct settings, ';'-separated) and layers (its layer names, ','-separated),
// calib_inputs ("quantized" or "fp", with calibration text), model and data provenance ("calib", "eval"), table "layers" with the tensors, total_bpw, and table "kl".
QuantizeJobResult quantize_job(LlamaModel& model, const Tokenizer& tok, const std::vector<LayerPlan>& plan,
                               const QuantizeJobOptions& options, ProgressSink* progress, RunWriter* run);

// An allocation applied: every layer with its allocated setting (excluded layers stay at full precision),
// quantized and recorded as quantize_job does, with attributes allocation (`source`, where the allocation came
// from) and predicted_kl (its summed cost) in place of codec and layers. Throws quench::Error naming `source`
// and the layer when the model lacks an allocated layer or its size differs.
QuantizeJobResult apply_job(LlamaModel& model, const Tokenizer& tok, const Allocation& allocation,
                            const std::string& source, const QuantizeJobOptions& options, ProgressSink* progress,
                            RunWriter* run);

// ---------------------------------------------------------------------------------------- sensitivity

struct SensitivityJobOptions {
    std::vector<std::size_t> layers;      // registry indices
    std::vector<std::string> candidates;  // codec specs (canonicalised here)
    TextInput calib;                      // the capture pass; required
    TextInput kl;                         // the fixed KL sample; no path: the calibration text
    SensitivityOptions sensitivity;
};

// Measures the missing (layer, candidate) pairs into m from the original weights (the model's replacements
// are restored first; putting quantized layers back afterwards is the caller's). Records model and data
// provenance ("calib", "kl"), tables "rd" and "sensitivity" (every pair m holds), and attributes candidates
// (canonical, ';'-separated), layers (names, ','-separated), proxy, quantize_calls, kl_evals and reused.
// On quench::Cancelled m keeps the pairs finished so far.
SensitivityStats sensitivity_job(LlamaModel& model, const Tokenizer& tok, const SensitivityJobOptions& options,
                                 Measurements& m, ProgressSink* progress, RunWriter* run);

// ---------------------------------------------------------------------------------------- eval

struct EvalJobResult {
    KlReport kl;
    std::vector<int32_t> tokens;  // the tokens kl scored
};

// KL of the model as it stands (current weights, holding the quantized layers of `current`) against its
// full-precision originals on `text`. Records model and data provenance ("eval"), table "kl", attribute
// quantized_layers and, when layers are quantized, table "layers" (without tensors: those are in the run that
// made them) and total_bpw.
EvalJobResult eval_job(const LlamaModel& model, const Tokenizer& tok, const QuantizeResult& current,
                       const std::string& text, const EvalOptions& options, ProgressSink* progress, RunWriter* run);

// ---------------------------------------------------------------------------------------- export

struct ExportJobOptions {
    ExportFormat format = ExportFormat::Packed;
    std::string out;     // directory (packed, hf) or .gguf file
    bool replace = false;  // replace an earlier export (or, for gguf, an existing file) at out
    DType hf_dtype = DType::F16;                 // hf: F16 or BF16
    std::string gguf_type;                       // gguf: every weight's ggml type; empty: per codec
    std::vector<std::string> gguf_tensor_types;  // gguf: "GGUF_NAME=TYPE" overrides (gguf_export_options)
};

struct ExportJobResult {
    uint64_t bytes = 0;            // the model file written
    double estimated_bytes = 0;    // estimate_export_bytes, worked out before writing
    PackedWriteReport packed;      // the report of the format written
    HfExportReport hf;
    GgufExportReport gguf;
};

// Writes the model as it stands, `current`'s quantized tensors packed as their codecs made them (packed) or
// dequantized (hf, gguf). Records model provenance, attributes format, out, replace, bytes, estimated_bytes
// and the exporter's report, table "gguf_fallbacks" (gguf), and `current`'s table "layers" (without tensors)
// and total_bpw.
ExportJobResult export_job(const LlamaModel& model, const QuantizeResult& current, const ExportJobOptions& options,
                           ProgressSink* progress, RunWriter* run);

// ---------------------------------------------------------------------------------------- qat

struct QatJobOptions {
    TextInput train;           // the training text (tokens: 0, all of it)
    std::string token_budget;  // "20000", "200k", "10%@train" (parse_token_budget); sets qat.tokens
    std::string eval;          // held-out text: the KL curve, and KL before and after; empty: none
    int64_t eval_tokens = 0;   // evaluate only the first N tokens (0: all)
    int64_t eval_ctx = 0;      // evaluation window (0: the model's default)
    TextInput ptq_calib;       // the calibration text the PTQ init used (recorded as data "calib"); no path: none
    QatOptions qat;            // qat.tokens comes from token_budget
    bool with_tensors = true;  // record the trained tensors
};

struct QatJobResult {
    QatResult qat;           // curves and the trained tensors
    int64_t token_budget = 0;  // the training budget in tokens (options.token_budget parsed)
    QuantizeResult trained;  // trained_layers(): the run's "layers" table
    bool has_kl = false;     // kl_ptq and kl measured (there is evaluation text)
    KlReport kl_ptq, kl;
    std::vector<int32_t> kl_tokens;  // the tokens kl scored
};

// Fine-tunes the layers of `ptq` (a PTQ result of codecs with a QAT form; the model's current weights are
// their dequantizations, its originals full precision) with train_qat. With qat.layer.paretoq_lsq2 the layers
// first start from the LSQ grid's own init. With evaluation text the model's KL is measured before ("kl_ptq")
// and after ("kl") training. Records attributes codec, layers and the training settings, model and data
// provenance ("train", "calib", "eval"), the trained layers' table and tensors, tables "qat_loss" and
// "qat_kl", the KL reports, tokens_used, steps, resumed_from and total_bpw. On return the model holds the
// trained layers; on an error it may hold either.
QatJobResult qat_job(LlamaModel& model, const Tokenizer& tok, const QuantizeResult& ptq, const QatJobOptions& options,
                     const QatCallback& callback, ProgressSink* progress, RunWriter* run);

// The QAT-trained layers in quantize's result form, in registry order: each exported tensor with its weight
// metrics measured again against full precision (the model's current weights are the trained ones), its
// bits and its codec's transform note.
QuantizeResult trained_layers(const LlamaModel& model, const QatResult& r);

// ---------------------------------------------------------------------------------------- runs as input

// A quantize-like run's model with its quantized layers put in: "study.h5:run-0003", or "study.h5" for the
// newest complete run that stored tensors. Throws quench::Error naming the file and run when it is not
// complete or stored no tensors, or a tensor names no layer of the model.
struct QuantizedRun {
    std::unique_ptr<LlamaModel> model;  // the run's model, current weights holding the dequantized layers
    QuantizeResult current;             // the run's "layers" table and its tensors
    std::string ref;                    // "study.h5:run-0003"
};
QuantizedRun load_quantized_run(const std::string& ref, ProgressSink* progress = nullptr);

}  // namespace quench
