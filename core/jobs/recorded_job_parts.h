#pragma once
// Private to the job sources (recorded_jobs.cpp, export_job.cpp, qat_job.cpp): the steps several jobs share,
// so that they record them alike.
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/model_eval.h"
#include "jobs/run_records.h"

namespace quench {

class ProgressSink;
class Tokenizer;
struct QuantizeResult;

namespace detail {

std::string joined(const std::vector<std::string>& parts, const char* sep);
// A data file's tokens with BOS at the start, cut to limit (0: all); none for an empty path.
std::vector<int32_t> text_tokens(const Tokenizer& tok, const std::string& path, int64_t limit);
// Model provenance (sha256 of the model files) when there is a run.
void record_model(RunWriter* run, const LlamaModel& model, ProgressSink& progress);
// KL of the model's current weights against its originals on a text; scored gets the tokens it scored.
KlReport eval_against_original(const LlamaModel& model, const Tokenizer& tok, const std::string& text,
                               const EvalOptions& options, ProgressSink& progress, std::vector<int32_t>* scored);
// Data row "eval" of a KL report.
DataProvenance eval_provenance(const std::string& text, const KlReport& kl);
// Table "layers" (no tensors) and total_bpw of the layers a model holds quantized; nothing when none.
void record_current_layers(RunWriter& run, const QuantizeResult& current);

}  // namespace detail
}  // namespace quench
