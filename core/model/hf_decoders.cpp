// Decoders of tokenizer.json, and the Metaspace settings shared with the pre-tokenizer of that name.
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/hf_pipeline.h"
#include "model/utf8.h"

namespace quench::hf {

using nlohmann::json;

MetaspaceConfig MetaspaceConfig::parse(const json& j, const std::string& where) {
    MetaspaceConfig c;
    c.replacement = get_string(j, "replacement", where);
    std::size_t i = 0;
    c.replacement_char = c.replacement.empty() ? 0 : utf8::next(c.replacement, i);
    if (c.replacement.empty() || i != c.replacement.size())
        throw Error(where + ".replacement: must be exactly one character");
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
        const std::string s = j["prepend_scheme"].get<std::string>();
        if (s == "always") c.prepend = Prepend::Always;
        else if (s == "first") c.prepend = Prepend::First;
        else if (s == "never") c.prepend = Prepend::Never;
        else throw Error(where + ".prepend_scheme: '" + s + "' is not one of always/first/never");
    } else {  // files written before prepend_scheme existed carry add_prefix_space instead
        c.prepend = j.value("add_prefix_space", true) ? Prepend::Always : Prepend::Never;
    }
    c.split = j.value("split", true);
    return c;
}

namespace {

class SequenceDecoder : public Decoder {
public:
    std::vector<std::unique_ptr<Decoder>> steps;
    void apply(std::vector<std::string>& tokens) const override {
        for (const auto& d : steps) d->apply(tokens);
    }
};

class ReplaceDecoder : public Decoder {
public:
    ReplaceDecoder(Pattern p, std::string c) : pattern_(std::move(p)), content_(std::move(c)) {}
    void apply(std::vector<std::string>& tokens) const override {
        for (std::string& t : tokens) t = replace_all(t, pattern_, content_);
    }

private:
    Pattern pattern_;
    std::string content_;
};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Runs of <0xXX> tokens become their bytes when those form valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
public:
    void apply(std::vector<std::string>& tokens) const override {
        std::vector<std::string> out;
        out.reserve(tokens.size());
        std::string bytes;
        auto flush = [&] {
            if (bytes.empty()) return;
            if (utf8::first_invalid(bytes) == utf8::kValid)
                out.push_back(bytes);
            else
                out.insert(out.end(), bytes.size(), "\xEF\xBF\xBD");
            bytes.clear();
        };
        for (std::string& t : tokens) {
            const bool shaped = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
            const int hi = shaped ? hex_digit(t[3]) : -1, lo = shaped ? hex_digit(t[4]) : -1;
            if (hi >= 0 && lo >= 0) {
                bytes += static_cast<char>(hi * 16 + lo);
            } else {
                flush();
                out.push_back(std::move(t));
            }
        }
        flush();
        tokens.swap(out);
    }
};

class FuseDecoder : public Decoder {
public:
    void apply(std::vector<std::string>& tokens) const override {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder : public Decoder {
public:
    StripDecoder(char32_t c, std::size_t start, std::size_t stop) : c_(c), start_(start), stop_(stop) {}
    void apply(std::vector<std::string>& tokens) const override {
        for (std::string& t : tokens) {
            std::vector<std::size_t> starts;  // byte offset of every character, plus the end
            for (std::size_t i = 0; i < t.size(); utf8::next(t, i)) starts.push_back(i);
            starts.push_back(t.size());
            const std::size_t n = starts.size() - 1;
            auto char_at = [&](std::size_t k) {
                std::size_t i = starts[k];
                return utf8::next(t, i);
            };
            std::size_t first = 0, last = n;
            while (first < start_ && first < n && char_at(first) == c_) ++first;
            while (n - last < stop_ && last > first && char_at(last - 1) == c_) --last;
            t = t.substr(starts[first], starts[last] - starts[first]);
        }
    }

private:
    char32_t c_;
    std::size_t start_, stop_;
};

// Maps every character back to its byte; a token holding characters outside the table is kept as is.
class ByteLevelDecoder : public Decoder {
public:
    void apply(std::vector<std::string>& tokens) const override {
        std::string bytes;
        for (const std::string& t : tokens) {
            const std::size_t mark = bytes.size();
            bool mapped = true;
            for (std::size_t i = 0; i < t.size() && mapped;) {
                const int b = char_to_byte(utf8::next(t, i));
                mapped = b >= 0;
                if (mapped) bytes += static_cast<char>(b);
            }
            if (!mapped) {
                bytes.resize(mark);
                bytes += t;
            }
        }
        tokens.assign(1, utf8::lossy(bytes));
    }
};

class MetaspaceDecoder : public Decoder {
public:
    explicit MetaspaceDecoder(MetaspaceConfig c) : c_(std::move(c)) {}
    void apply(std::vector<std::string>& tokens) const override {
        // As in tokenizers: the replacement becomes a space, except that in the first token every
        // replacement is dropped (it stands for the space the encoder prepended).
        const bool drop_first = c_.prepend != MetaspaceConfig::Prepend::Never;
        for (std::size_t k = 0; k < tokens.size(); ++k) {
            std::string out;
            const std::string& t = tokens[k];
            for (std::size_t i = 0; i < t.size();) {
                const std::size_t at = i;
                if (utf8::next(t, i) != c_.replacement_char)
                    out.append(t, at, i - at);
                else if (k > 0 || !drop_first)
                    out += ' ';
            }
            tokens[k].swap(out);
        }
    }

private:
    MetaspaceConfig c_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where) {
    if (j.is_null()) return nullptr;
    const std::string type = get_string(j, "type", where);
    if (type == "Sequence") {
        auto seq = std::make_unique<SequenceDecoder>();
        const json& list = field(j, "decoders");
        for (std::size_t i = 0; i < list.size(); ++i)
            seq->steps.push_back(make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]"));
        return seq;
    }
    if (type == "Replace")
        return std::make_unique<ReplaceDecoder>(Pattern(field(j, "pattern"), where + ".pattern"),
                                                get_string(j, "content", where));
    if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
    if (type == "Fuse") return std::make_unique<FuseDecoder>();
    if (type == "Strip") {
        const std::string content = get_string(j, "content", where);
        std::size_t i = 0;
        const char32_t c = content.empty() ? 0 : utf8::next(content, i);
        if (content.empty() || i != content.size()) throw Error(where + ".content: must be exactly one character");
        return std::make_unique<StripDecoder>(c, j.value("start", std::size_t{0}), j.value("stop", std::size_t{0}));
    }
    if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(MetaspaceConfig::parse(j, where));
    throw Error(where + ".type: decoder '" + type + "' is not supported");
}

}  // namespace quench::hf
