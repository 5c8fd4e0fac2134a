#pragma once
// A model directory's tokenizer as GGUF's tokenizer.ggml.* keys, in the two forms llama.cpp reads:
//   "llama": SentencePiece-style BPE (tokens, scores, token types; '▁' for spaces, <0xXX> byte tokens),
//   "gpt2":  byte-level BPE (tokens, token types, merges "a b", and tokenizer.ggml.pre naming the
//            pre-tokenizer regex llama.cpp must use).
// Built from tokenizer.json (a BPE model); BOS/EOS and whether they are added come from the existing
// tokenizer loader (tokenizer_config.json / special_tokens_map.json applied), so export and `eval` agree.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quench {

class GgufWriter;

// llama.cpp's llama_token_type values, as stored in tokenizer.ggml.token_type.
enum class GgufTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct GgufVocab {
    std::string model;  // "llama" or "gpt2"
    std::string pre;    // tokenizer.ggml.pre: "default" for llama; "qwen2", "llama-bpe", "gpt-2", ... for gpt2
    std::vector<std::string> tokens;
    std::vector<float> scores;         // llama only: higher merges first (see gguf_tokenizer.cpp)
    std::vector<int32_t> token_types;  // GgufTokenType per token
    std::vector<std::string> merges;   // gpt2 only, rank order
    int64_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
    bool add_bos = false, add_eos = false;
    std::optional<bool> add_space_prefix;  // llama: the normalizer/pre-tokenizer prepends '▁'
    std::string chat_template;             // from tokenizer_config.json, when it has one
    std::vector<std::string> notes;        // what could not be carried over exactly
};

// Reads dir/tokenizer.json (+ tokenizer_config.json). A directory with only tokenizer.model is refused
// for now: SentencePieceBackend exposes no piece scores or types (see docs/gguf-export.md). Throws
// quench::Error naming the file and the field.
GgufVocab gguf_vocab_from_model_dir(const std::string& dir);

// Pads the vocabulary to the model's embedding rows with "[PAD<id>]" tokens of type Unused (as llama.cpp's
// converter does); throws when the tokenizer has more tokens than the model has rows.
void pad_gguf_vocab(GgufVocab& vocab, int64_t vocab_size, const std::string& where);

// Writes the tokenizer.ggml.* keys (and tokenizer.chat_template).
void add_gguf_vocab(GgufWriter& writer, const GgufVocab& vocab);

}  // namespace quench
