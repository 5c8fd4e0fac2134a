#pragma once
// The text stages of a Hugging Face tokenizer.json around its model: normalizers, pre-tokenizers and
// decoders, each built from its JSON object and reproducing the `tokenizers` library (Rust) behaviour.
// Only the stages that decoder-only LLM tokenizers use are implemented; any other "type" throws
// quench::Error naming the file and field, so an unsupported tokenizer never silently mis-tokenizes.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace quench::hf {

using Span = std::pair<std::size_t, std::size_t>;  // byte range [first, second)

// A compiled PCRE2 pattern (UTF + UCP, JIT when available). tokenizer.json regexes are written for
// Oniguruma; the ones LLM tokenizers use (\p{L}, \p{N}, (?i:...), \s+(?!\S)) mean the same in PCRE2.
class Regex {
public:
    Regex(const std::string& pattern, const std::string& where);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    // Non-overlapping matches, left to right, over already-validated UTF-8.
    std::vector<Span> find_all(std::string_view s) const;

private:
    void* code_ = nullptr;  // pcre2_code_8*, kept opaque so users need no PCRE2 headers
};

// A Replace/Split pattern: {"String": "..."} (literal) or {"Regex": "..."}.
class Pattern {
public:
    Pattern(const nlohmann::json& j, const std::string& where);
    std::vector<Span> find_all(std::string_view s) const;

private:
    std::string literal_;
    std::shared_ptr<Regex> regex_;
};

// s with every match of pattern replaced by content (Replace normalizer and decoder).
std::string replace_all(const std::string& s, const Pattern& pattern, const std::string& content);

// Metaspace settings, read the same way for the pre-tokenizer and the decoder of that name.
struct MetaspaceConfig {
    enum class Prepend { Always, First, Never };
    std::string replacement;  // one character, usually U+2581
    char32_t replacement_char = 0;
    Prepend prepend = Prepend::Always;
    bool split = true;
    static MetaspaceConfig parse(const nlohmann::json& j, const std::string& where);
};

// One pre-token. at_origin is true when it starts at byte 0 of the caller's original text, which is
// what Metaspace's prepend_scheme "first" tests.
struct Piece {
    std::string text;
    bool at_origin = false;
};

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void apply(std::string& s) const = 0;
};

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    virtual void apply(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
public:
    virtual ~Decoder() = default;
    // Rewrites the token strings in place; the caller joins what is left.
    virtual void apply(std::vector<std::string>& tokens) const = 0;
};

// `where` names the file and field ("…/tokenizer.json: normalizer") for error messages. A JSON null
// yields nullptr (stage absent).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);

// GPT-2's byte-to-unicode table: byte b is written as the UTF-8 of this code point.
char32_t byte_to_char(unsigned char b);
// Inverse of byte_to_char; -1 for code points outside the table.
int char_to_byte(char32_t cp);

// j[key] by reference, or a null value when j is not an object or lacks the key (never copies).
const nlohmann::json& field(const nlohmann::json& j, const char* key);

// Reads j[key] as a string, throwing an Error naming `where` and the key when absent or not a string.
std::string get_string(const nlohmann::json& j, const char* key, const std::string& where);

}  // namespace quench::hf
