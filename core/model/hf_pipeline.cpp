// Regex/pattern plumbing, the byte-level table and the normalizers of tokenizer.json.
// Pre-tokenizers live in hf_pretokenizers.cpp, decoders in hf_decoders.cpp.
#include "model/hf_pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <array>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/utf8.h"

namespace quench::hf {

using nlohmann::json;

// ---- Regex / Pattern ----

Regex::Regex(const std::string& pattern, const std::string& where) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(where + ": regex '" + pattern + "' does not compile at offset " + std::to_string(err_off) +
                    ": " + reinterpret_cast<const char*>(msg));
    }
    // JIT is an optional speed-up (tens of times faster on long texts); the interpreter is the fallback.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<Span> Regex::find_all(std::string_view s) const {
    auto* code = static_cast<pcre2_code*>(code_);
    // Match data per call keeps encode() const and thread-safe.
    std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(
        pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
    std::vector<Span> out;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    std::size_t off = 0;
    while (off < s.size()) {
        const int rc = pcre2_match(code, subject, s.size(), off, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw Error(std::string("regex match failed: ") + reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        if (ov[1] == ov[0]) {  // empty match: it splits nothing, step over one character
            if (ov[0] >= s.size()) break;
            off = ov[0] + utf8::seq_len(static_cast<unsigned char>(s[ov[0]]));
            continue;
        }
        out.emplace_back(ov[0], ov[1]);
        off = ov[1];
    }
    return out;
}

Pattern::Pattern(const json& j, const std::string& where) {
    if (j.is_object() && j.contains("String") && j["String"].is_string()) {
        literal_ = j["String"].get<std::string>();
    } else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
        regex_ = std::make_shared<Regex>(j["Regex"].get<std::string>(), where);
    } else {
        throw Error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }
}

std::vector<Span> Pattern::find_all(std::string_view s) const {
    if (regex_) return regex_->find_all(s);
    std::vector<Span> out;
    if (literal_.empty()) return out;
    for (std::size_t p = s.find(literal_); p != std::string_view::npos; p = s.find(literal_, p + literal_.size()))
        out.emplace_back(p, p + literal_.size());
    return out;
}

std::string replace_all(const std::string& s, const Pattern& pattern, const std::string& content) {
    const std::vector<Span> hits = pattern.find_all(s);
    if (hits.empty()) return s;
    std::string out;
    std::size_t prev = 0;
    for (const Span& h : hits) {
        out.append(s, prev, h.first - prev);
        out += content;
        prev = h.second;
    }
    out.append(s, prev, std::string::npos);
    return out;
}

const json& field(const json& j, const char* key) {
    static const json null;
    if (!j.is_object()) return null;
    auto it = j.find(key);
    return it == j.end() ? null : *it;
}

std::string get_string(const json& j, const char* key, const std::string& where) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) throw Error(where + "." + key + ": missing or not a string");
    return it->get<std::string>();
}

// ---- byte-level table ----

namespace {

struct ByteTable {
    std::array<char32_t, 256> to_char{};
    std::array<int, 324> to_byte{};  // the table's code points are all below 256 + 68
    ByteTable() {
        to_byte.fill(-1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            to_char[b] = printable ? char32_t(b) : char32_t(256 + extra++);
            to_byte[to_char[b]] = b;
        }
    }
};

const ByteTable& byte_table() {
    static const ByteTable t;
    return t;
}

}  // namespace

char32_t byte_to_char(unsigned char b) { return byte_table().to_char[b]; }

int char_to_byte(char32_t cp) { return cp < 324 ? byte_table().to_byte[cp] : -1; }

// ---- normalizers ----

namespace {

bool is_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}

class SequenceNormalizer : public Normalizer {
public:
    std::vector<std::unique_ptr<Normalizer>> steps;
    void apply(std::string& s) const override {
        for (const auto& n : steps) n->apply(s);
    }
};

class UnicodeNormalizer : public Normalizer {
public:
    explicit UnicodeNormalizer(int options) : options_(options) {}
    void apply(std::string& s) const override {
        if (is_ascii(s)) return;  // every Unicode normal form leaves ASCII unchanged
        utf8proc_uint8_t* out = nullptr;
        const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                                static_cast<utf8proc_ssize_t>(s.size()), &out,
                                                static_cast<utf8proc_option_t>(options_));
        if (n < 0) throw Error(std::string("Unicode normalization failed: ") + utf8proc_errmsg(n));
        s.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
        std::free(out);
    }

private:
    int options_;
};

// Maps every code point through a function; shared by Lowercase and StripAccents.
template <typename F>
void map_chars(std::string& s, F f) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) f(out, utf8::next(s, i));
    s.swap(out);
}

// One code point in, one out: differs from Rust's char::to_lowercase only for the few characters whose
// lowercase is two code points (U+0130 'İ' becomes "i̇" there, "i" here).
class LowercaseNormalizer : public Normalizer {
public:
    void apply(std::string& s) const override {
        map_chars(s, [](std::string& out, char32_t c) { utf8::append(out, char32_t(utf8proc_tolower(int32_t(c)))); });
    }
};

class StripAccentsNormalizer : public Normalizer {
public:
    void apply(std::string& s) const override {
        map_chars(s, [](std::string& out, char32_t c) {
            const auto cat = utf8proc_category(int32_t(c));
            if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME)
                utf8::append(out, c);
        });
    }
};

class PrependNormalizer : public Normalizer {
public:
    explicit PrependNormalizer(std::string p) : prefix_(std::move(p)) {}
    void apply(std::string& s) const override {
        if (!s.empty()) s.insert(0, prefix_);  // HF leaves an empty string empty
    }

private:
    std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
public:
    ReplaceNormalizer(Pattern p, std::string c) : pattern_(std::move(p)), content_(std::move(c)) {}
    void apply(std::string& s) const override { s = replace_all(s, pattern_, content_); }

private:
    Pattern pattern_;
    std::string content_;
};

class StripNormalizer : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    void apply(std::string& s) const override {
        std::size_t begin = 0, end = s.size();
        if (left_) {
            for (std::size_t i = 0; i < s.size();) {
                if (!utf8::is_whitespace(utf8::next(s, i))) break;
                begin = i;
            }
        }
        if (right_) {
            std::size_t i = begin, last_non_space_end = begin;
            while (i < s.size())
                if (!utf8::is_whitespace(utf8::next(s, i))) last_non_space_end = i;
            end = last_non_space_end;
        }
        s = s.substr(begin, end - begin);
    }

private:
    bool left_, right_;
};

class ByteLevelNormalizer : public Normalizer {
public:
    void apply(std::string& s) const override {
        std::string out;
        out.reserve(s.size() * 2);
        for (unsigned char b : s) utf8::append(out, byte_to_char(b));
        s.swap(out);
    }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
    if (j.is_null()) return nullptr;
    const std::string type = get_string(j, "type", where);
    if (type == "Sequence") {
        auto seq = std::make_unique<SequenceNormalizer>();
        const json& list = field(j, "normalizers");
        for (std::size_t i = 0; i < list.size(); ++i)
            seq->steps.push_back(make_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]"));
        return seq;
    }
    if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    if (type == "NFKC")
        return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    if (type == "NFKD")
        return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
    if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
    if (type == "Prepend") return std::make_unique<PrependNormalizer>(get_string(j, "prepend", where));
    if (type == "Replace")
        return std::make_unique<ReplaceNormalizer>(Pattern(field(j, "pattern"), where + ".pattern"),
                                                   get_string(j, "content", where));
    if (type == "Strip")
        return std::make_unique<StripNormalizer>(j.value("strip_left", false), j.value("strip_right", false));
    if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
    throw Error(where + ".type: normalizer '" + type + "' is not supported");
}

}  // namespace quench::hf
