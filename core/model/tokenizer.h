#pragma once
// Tokenizer interface shared by the HF tokenizer.json BPE (SentencePiece-style and byte-level styles)
// and SentencePiece .model files. Implementations are in hf_bpe_tokenizer.* and sentencepiece_tokenizer.*.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quench {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Encodes UTF-8 text. add_special applies the tokenizer's own post-processing (BOS for Llama-style
    // tokenizers, nothing for Qwen2-style). Invalid UTF-8 throws quench::Error.
    virtual std::vector<int32_t> encode(const std::string& text, bool add_special = true) const = 0;
    virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
    virtual int32_t vocab_size() const = 0;
    virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
    virtual int32_t eos_id() const = 0;  // -1 when the tokenizer has none
    virtual std::string token(int32_t id) const = 0;  // the raw vocabulary string of one id
    virtual std::string kind() const = 0;            // "bpe-sentencepiece", "bpe-bytelevel", "sentencepiece"
};

// Loads tokenizer.json (preferred) or tokenizer.model from a model directory; BOS/EOS come from
// tokenizer_config.json / special_tokens_map.json when present. Throws quench::Error naming the directory
// when neither file exists.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

// Direct loaders, used by tests and by load_tokenizer.
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& tokenizer_json_path);
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_path);

}  // namespace quench
