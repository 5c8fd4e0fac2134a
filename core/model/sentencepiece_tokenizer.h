#pragma once
// SentencePiece .model files (Llama 1/2, TinyLlama, stories15M) through libsentencepiece, so encoding is
// exactly Google's implementation (loaded as a module: see sentencepiece_backend.h). BOS/EOS come from the model proto; encode(add_special) prepends BOS
// (the Llama convention) unless tokenizer_config.json says otherwise (see load_tokenizer).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace quench {

class SentencePieceBackend;

class SentencePieceTokenizer : public Tokenizer {
public:
    explicit SentencePieceTokenizer(const std::string& model_path);  // throws quench::Error
    ~SentencePieceTokenizer() override;

    std::vector<int32_t> encode(const std::string& text, bool add_special = true) const override;
    // skip_special drops control and unknown ids; otherwise they are written as their piece text.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
    int32_t vocab_size() const override;
    int32_t bos_id() const override { return bos_id_; }
    int32_t eos_id() const override { return eos_id_; }
    std::string token(int32_t id) const override;
    std::string kind() const override { return "sentencepiece"; }

    int32_t token_to_id(const std::string& piece) const;  // -1 when absent

    // Overrides from tokenizer_config.json / special_tokens_map.json, applied by load_tokenizer.
    void set_bos_id(int32_t id) { bos_id_ = id; }
    void set_eos_id(int32_t id) { eos_id_ = id; }
    void set_add_bos(bool on) { add_bos_ = on; }
    void set_add_eos(bool on) { add_eos_ = on; }

private:
    void check_id(int32_t id) const;
    bool is_special(int32_t id) const;

    std::string path_;
    std::unique_ptr<SentencePieceBackend> sp_;  // libsentencepiece behind its run-time module
    int32_t bos_id_ = -1;
    int32_t eos_id_ = -1;
    bool add_bos_ = true;
    bool add_eos_ = false;
};

}  // namespace quench
