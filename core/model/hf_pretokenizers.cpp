// Pre-tokenizers of tokenizer.json. They follow the Rust `tokenizers` split semantics: find the matches,
// label every byte range match / non-match, apply the delimiter behaviour, and drop empty pieces.
#include <utf8proc.h>

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/hf_pipeline.h"
#include "model/utf8.h"

namespace quench::hf {

using nlohmann::json;

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j, const std::string& where) {
    const std::string b = get_string(j, "behavior", where);
    if (b == "Removed") return Behavior::Removed;
    if (b == "Isolated") return Behavior::Isolated;
    if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
    if (b == "MergedWithNext") return Behavior::MergedWithNext;
    if (b == "Contiguous") return Behavior::Contiguous;
    throw Error(where + ".behavior: '" + b + "' is not a split behaviour");
}

struct Segment {
    Span span;
    bool flag;  // "is a match" on input, "remove it" after the behaviour is applied
};

// Splits p at the given matches and appends the resulting non-empty pieces to out.
void split_piece(const Piece& p, const std::vector<Span>& matches, bool invert, Behavior behavior,
                 std::vector<Piece>& out) {
    std::vector<Segment> segs;
    std::size_t prev = 0;
    for (const Span& m : matches) {
        if (prev != m.first) segs.push_back({{prev, m.first}, invert});
        segs.push_back({m, !invert});
        prev = m.second;
    }
    if (prev != p.text.size() || segs.empty()) segs.push_back({{prev, p.text.size()}, invert});

    std::vector<Segment> res;
    bool prev_match = false;
    switch (behavior) {
        case Behavior::Removed:
            res = segs;
            break;
        case Behavior::Isolated:
            for (const Segment& s : segs) res.push_back({s.span, false});
            break;
        case Behavior::MergedWithPrevious:
            for (const Segment& s : segs) {
                if (s.flag && !prev_match && !res.empty())
                    res.back().span.second = s.span.second;
                else
                    res.push_back({s.span, false});
                prev_match = s.flag;
            }
            break;
        case Behavior::MergedWithNext:  // the mirror image of MergedWithPrevious
            for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
                if (it->flag && !prev_match && !res.empty())
                    res.back().span.first = it->span.first;
                else
                    res.push_back({it->span, false});
                prev_match = it->flag;
            }
            std::reverse(res.begin(), res.end());
            break;
        case Behavior::Contiguous:
            for (const Segment& s : segs) {
                if (s.flag == prev_match && !res.empty())
                    res.back().span.second = s.span.second;
                else
                    res.push_back({s.span, false});
                prev_match = s.flag;
            }
            break;
    }
    for (const Segment& s : res) {
        if (s.flag || s.span.first == s.span.second) continue;
        out.push_back({p.text.substr(s.span.first, s.span.second - s.span.first), p.at_origin && s.span.first == 0});
    }
}

// Every single character satisfying pred is one match.
template <typename Pred>
std::vector<Span> char_matches(std::string_view s, Pred pred) {
    std::vector<Span> out;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t at = i;
        if (pred(utf8::next(s, i))) out.emplace_back(at, i);
    }
    return out;
}

bool in_categories(char32_t c, std::initializer_list<utf8proc_category_t> cats) {
    const utf8proc_category_t cat = utf8proc_category(int32_t(c));
    for (utf8proc_category_t k : cats)
        if (k == cat) return true;
    return false;
}

class SequencePreTokenizer : public PreTokenizer {
public:
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    void apply(std::vector<Piece>& pieces) const override {
        for (const auto& s : steps) s->apply(pieces);
    }
};

// Shared shape of the pre-tokenizers that only split: subclasses say where the matches are.
class SplittingPreTokenizer : public PreTokenizer {
public:
    SplittingPreTokenizer(bool invert, Behavior b) : invert_(invert), behavior_(b) {}
    void apply(std::vector<Piece>& pieces) const override {
        std::vector<Piece> out;
        out.reserve(pieces.size());
        for (const Piece& p : pieces) split_piece(p, matches(p.text), invert_, behavior_, out);
        pieces.swap(out);
    }

protected:
    virtual std::vector<Span> matches(std::string_view s) const = 0;

private:
    bool invert_;
    Behavior behavior_;
};

class SplitPreTokenizer : public SplittingPreTokenizer {
public:
    SplitPreTokenizer(Pattern p, bool invert, Behavior b) : SplittingPreTokenizer(invert, b), pattern_(std::move(p)) {}

protected:
    std::vector<Span> matches(std::string_view s) const override { return pattern_.find_all(s); }

private:
    Pattern pattern_;
};

class WhitespaceSplitPreTokenizer : public SplittingPreTokenizer {
public:
    WhitespaceSplitPreTokenizer() : SplittingPreTokenizer(false, Behavior::Removed) {}

protected:
    std::vector<Span> matches(std::string_view s) const override { return char_matches(s, utf8::is_whitespace); }
};

class DigitsPreTokenizer : public SplittingPreTokenizer {
public:
    explicit DigitsPreTokenizer(bool individual)
        : SplittingPreTokenizer(false, individual ? Behavior::Isolated : Behavior::Contiguous) {}

protected:
    std::vector<Span> matches(std::string_view s) const override {
        return char_matches(s, [](char32_t c) {
            return in_categories(c, {UTF8PROC_CATEGORY_ND, UTF8PROC_CATEGORY_NL, UTF8PROC_CATEGORY_NO});
        });
    }
};

class PunctuationPreTokenizer : public SplittingPreTokenizer {
public:
    explicit PunctuationPreTokenizer(Behavior b) : SplittingPreTokenizer(false, b) {}

protected:
    std::vector<Span> matches(std::string_view s) const override {
        return char_matches(s, [](char32_t c) {
            const bool ascii_punct = c < 0x80 && std::ispunct(static_cast<int>(c));
            return ascii_punct ||
                   in_categories(c, {UTF8PROC_CATEGORY_PC, UTF8PROC_CATEGORY_PD, UTF8PROC_CATEGORY_PS,
                                     UTF8PROC_CATEGORY_PE, UTF8PROC_CATEGORY_PI, UTF8PROC_CATEGORY_PF,
                                     UTF8PROC_CATEGORY_PO});
        });
    }
};

// GPT-2 byte-level: optional leading space, optional GPT-2 regex split, then every byte becomes one
// printable character so the BPE vocabulary never needs an unknown token.
class ByteLevelPreTokenizer : public PreTokenizer {
public:
    ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& where)
        : add_prefix_space_(add_prefix_space) {
        if (use_regex)
            regex_ = std::make_unique<Regex>(
                R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", where);
    }
    void apply(std::vector<Piece>& pieces) const override {
        std::vector<Piece> split;
        split.reserve(pieces.size());
        for (Piece& p : pieces) {
            if (add_prefix_space_ && p.text.compare(0, 1, " ") != 0) p.text.insert(0, " ");
            if (regex_)
                split_piece(p, regex_->find_all(p.text), false, Behavior::Isolated, split);
            else
                split.push_back(std::move(p));
        }
        for (Piece& p : split) {
            std::string mapped;
            mapped.reserve(p.text.size() + p.text.size() / 2);
            for (unsigned char b : p.text) utf8::append(mapped, byte_to_char(b));
            p.text.swap(mapped);
        }
        pieces.swap(split);
    }

private:
    bool add_prefix_space_;
    std::unique_ptr<Regex> regex_;
};

// SentencePiece-style: spaces become the replacement character, which is prepended per the scheme, and
// (when split is on) every replacement character starts a new piece.
class MetaspacePreTokenizer : public PreTokenizer {
public:
    explicit MetaspacePreTokenizer(MetaspaceConfig c) : c_(std::move(c)) {}
    void apply(std::vector<Piece>& pieces) const override {
        std::vector<Piece> out;
        out.reserve(pieces.size());
        for (Piece& p : pieces) {
            p.text = replace_all(p.text, space_, c_.replacement);
            const bool starts = p.text.compare(0, c_.replacement.size(), c_.replacement) == 0;
            const bool prepend = c_.prepend == MetaspaceConfig::Prepend::Always ||
                                 (c_.prepend == MetaspaceConfig::Prepend::First && p.at_origin);
            if (prepend && !starts) p.text.insert(0, c_.replacement);
            if (c_.split) {
                const char32_t r = c_.replacement_char;
                split_piece(p, char_matches(p.text, [r](char32_t c) { return c == r; }), false,
                            Behavior::MergedWithNext, out);
            } else if (!p.text.empty()) {
                out.push_back(std::move(p));
            }
        }
        pieces.swap(out);
    }

private:
    MetaspaceConfig c_;
    Pattern space_{json{{"String", " "}}, "Metaspace"};
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
    if (j.is_null()) return nullptr;
    const std::string type = get_string(j, "type", where);
    if (type == "Sequence") {
        auto seq = std::make_unique<SequencePreTokenizer>();
        const json& list = field(j, "pretokenizers");
        for (std::size_t i = 0; i < list.size(); ++i)
            seq->steps.push_back(make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]"));
        return seq;
    }
    if (type == "Split")
        return std::make_unique<SplitPreTokenizer>(Pattern(field(j, "pattern"), where + ".pattern"),
                                                   j.value("invert", false), parse_behavior(j, where));
    if (type == "ByteLevel")
        return std::make_unique<ByteLevelPreTokenizer>(j.value("add_prefix_space", true), j.value("use_regex", true),
                                                       where);
    if (type == "Metaspace") return std::make_unique<MetaspacePreTokenizer>(MetaspaceConfig::parse(j, where));
    if (type == "Whitespace") {
        // \w+|[^\w\s]+ kept, everything else (whitespace) removed.
        json pattern{{"Regex", R"(\w+|[^\w\s]+)"}};
        return std::make_unique<SplitPreTokenizer>(Pattern(pattern, where), true, Behavior::Removed);
    }
    if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
    if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(j.value("individual_digits", false));
    if (type == "Punctuation") {
        const Behavior b = j.contains("behavior") ? parse_behavior(j, where) : Behavior::Isolated;
        return std::make_unique<PunctuationPreTokenizer>(b);
    }
    throw Error(where + ".type: pre-tokenizer '" + type + "' is not supported");
}

}  // namespace quench::hf
