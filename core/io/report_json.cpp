#include "io/report_json.h"

#include "analysis/model_eval.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"

namespace quench {

nlohmann::json to_json(const EvalProtocol& p) {
    return {{"ctx", p.ctx},
            {"stride", p.stride},
            {"text_tokens", p.text_tokens},
            {"scored_tokens", p.scored_tokens},
            {"windows", p.windows},
            {"bos", p.bos_per_window ? "per-window" : "start"}};
}

nlohmann::json to_json(const PerplexityResult& r) {
    return {{"perplexity", r.perplexity},
            {"nll_mean", r.nll_mean},
            {"protocol", to_json(r.protocol)},
            {"seconds", r.seconds},
            {"tokens_per_second", r.tokens_per_second}};
}

nlohmann::json to_json(const KlReport& r, bool with_per_token_kl) {
    nlohmann::json j = {{"kl_mean", r.kl_mean},       {"kl_stderr", r.kl_stderr}, {"kl_median", r.kl_median},
                        {"kl_p90", r.kl_p90},         {"kl_p99", r.kl_p99},       {"kl_p999", r.kl_p999},
                        {"kl_max", r.kl_max},         {"top1_agreement", r.top1_agreement},
                        {"rms_delta_p", r.rms_delta_p}, {"ppl_ref", r.ppl_ref},   {"ppl_test", r.ppl_test},
                        {"ppl_ratio", r.ppl_ratio},   {"protocol", to_json(r.protocol)},
                        {"first_scored_token", r.first_scored_token}, {"seconds", r.seconds}};
    if (with_per_token_kl) j["per_token_kl"] = r.per_token_kl;
    return j;
}

nlohmann::json model_info_json(const LlamaModel& m, const Tokenizer* tok) {
    const auto& c = m.config();
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : m.layers().all())
        layers.push_back({{"name", l.name},
                          {"block", l.block},
                          {"kind", layer_kind_name(l.kind)},
                          {"out_features", l.out_features},
                          {"in_features", l.in_features},
                          {"params", l.params()}});
    nlohmann::json j = {{"dir", m.dir()},
                        {"architecture", c.architecture},
                        {"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size},
                        {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads},
                        {"num_key_value_heads", c.num_key_value_heads},
                        {"head_dim", c.head_dim},
                        {"vocab_size", c.vocab_size},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"rope_theta", c.rope_theta},
                        {"tie_word_embeddings", c.tie_word_embeddings},
                        {"torch_dtype", c.torch_dtype},
                        {"params", m.num_params()},
                        {"quantizable_params", m.layers().total_params()},
                        {"tensors", m.checkpoint().stored_count()},
                        {"aliases", m.checkpoint().names().size() - m.checkpoint().stored_count()},
                        {"files", m.checkpoint().files()},
                        {"bytes", m.checkpoint().total_bytes()},
                        {"layers", layers}};
    if (tok)
        j["tokenizer"] = {{"kind", tok->kind()}, {"vocab_size", tok->vocab_size()}, {"bos_id", tok->bos_id()},
                          {"eos_id", tok->eos_id()}};
    return j;
}

}  // namespace quench
