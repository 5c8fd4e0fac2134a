#pragma once
// JSON forms of core results, shared by the CLI's --json output, the GUI and the run store, so every
// front end names the same numbers the same way (kl_mean, kl_p99, ppl_ratio...).
#include <nlohmann/json.hpp>

namespace quench {

struct EvalProtocol;
struct PerplexityResult;
struct KlReport;
class LlamaModel;
class Tokenizer;

nlohmann::json to_json(const EvalProtocol& p);
nlohmann::json to_json(const PerplexityResult& r);
nlohmann::json to_json(const KlReport& r, bool with_per_token_kl = false);
// Architecture, dimensions, parameter and tensor counts, files, tokenizer, and the quantizable layers.
nlohmann::json model_info_json(const LlamaModel& m, const Tokenizer* tok);

}  // namespace quench
