#pragma once
// Hugging Face tokenizer.json with a BPE model, in both styles LLMs use: SentencePiece-style (Llama 2,
// Mistral, TinyStories: '▁' for spaces, <0xXX> byte fallback) and GPT-2 byte-level (Qwen2/3, Llama 3,
// SmolLM). Everything is driven by the JSON; the pipeline is the Rust `tokenizers` one:
//   added tokens split out of the raw text -> normalizer -> normalized added tokens split out ->
//   pre-tokenizer -> BPE per pre-token -> post-processor (BOS/EOS template).
// Decoding maps ids to token strings and runs the decoder chain over all of them.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/tokenizer.h"

namespace quench {

namespace hf {
class Normalizer;
class PreTokenizer;
class Decoder;
class BpeModel;
}  // namespace hf

class HfBpeTokenizer : public Tokenizer {
public:
    explicit HfBpeTokenizer(const std::string& tokenizer_json_path);  // throws quench::Error
    ~HfBpeTokenizer() override;

    std::vector<int32_t> encode(const std::string& text, bool add_special = true) const override;
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
    int32_t vocab_size() const override;
    int32_t bos_id() const override { return bos_id_; }
    int32_t eos_id() const override { return eos_id_; }
    std::string token(int32_t id) const override;
    std::string kind() const override { return byte_level_ ? "bpe-bytelevel" : "bpe-sentencepiece"; }

    // Added tokens first, then the BPE vocabulary; -1 when absent.
    int32_t token_to_id(const std::string& token) const;

    // Overrides from tokenizer_config.json / special_tokens_map.json, applied by load_tokenizer. By
    // default BOS/EOS are the first/last special token of the post-processor template (or -1).
    void set_bos_id(int32_t id) { bos_id_ = id; }
    void set_eos_id(int32_t id) { eos_id_ = id; }
    // add_bos_token / add_eos_token: replace the template's leading/trailing tokens with the current
    // BOS/EOS (or nothing), which is what transformers does for Llama-family tokenizers.
    void set_add_bos(bool on);
    void set_add_eos(bool on);

private:
    struct AddedToken {
        std::string content;
        std::string match;  // what is searched for: content, normalized when the token is "normalized"
        int32_t id = -1;
        bool special = false;
        bool single_word = false;
        bool lstrip = false;
        bool rstrip = false;
        bool normalized = false;
    };
    struct AddedMatch {
        std::size_t begin, end;
        int32_t id;
    };
    // Candidate added tokens per first byte, longest first (leftmost-longest matching).
    using Buckets = std::array<std::vector<const AddedToken*>, 256>;

    void parse_added_tokens(const nlohmann::json& list);
    void parse_post_processor(const nlohmann::json& j, const std::string& where);
    void check_template_id(int32_t id) const;
    std::vector<AddedMatch> find_added(std::string_view s, const Buckets& buckets) const;
    const std::string& token_ref(int32_t id) const;

    std::string path_;
    std::unique_ptr<hf::Normalizer> normalizer_;
    std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
    std::unique_ptr<hf::Decoder> decoder_;
    std::unique_ptr<hf::BpeModel> model_;
    std::vector<AddedToken> added_;
    std::unordered_map<std::string, int32_t> added_by_content_;
    std::unordered_map<int32_t, const AddedToken*> added_by_id_;
    Buckets raw_buckets_{};         // tokens matched in the raw text (normalized: false)
    Buckets normalized_buckets_{};  // tokens matched after normalization (normalized: true)
    std::vector<int32_t> prefix_;   // post-processor tokens before / after the sequence
    std::vector<int32_t> suffix_;
    int32_t bos_id_ = -1;
    int32_t eos_id_ = -1;
    int32_t vocab_size_ = 0;
    bool byte_level_ = false;
};

}  // namespace quench
