#include "model/hf_bpe_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/json_file.h"
#include "model/hf_bpe_model.h"
#include "model/hf_pipeline.h"
#include "model/utf8.h"

namespace quench {

using nlohmann::json;

namespace {

json read_json(const std::string& path) { return read_json_file(path); }

// True when some stage object (at any nesting depth) has "type": "ByteLevel".
bool mentions_byte_level(const json& j) {
    if (j.is_object()) {
        auto it = j.find("type");
        if (it != j.end() && it->is_string() && *it == "ByteLevel") return true;
    }
    if (j.is_structured())
        for (const json& child : j)
            if (mentions_byte_level(child)) return true;
    return false;
}

// regex \w as used by single_word: letters, marks, numbers and connector punctuation such as '_'.
bool is_word_char(char32_t c) {
    switch (utf8proc_category(int32_t(c))) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_PC:
            return true;
        default:
            return false;
    }
}

// Start of the last character of s[0, end), end > 0 (validated UTF-8).
std::size_t char_start_before(std::string_view s, std::size_t end) {
    std::size_t i = end - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return i;
}

}  // namespace

HfBpeTokenizer::HfBpeTokenizer(const std::string& path) : path_(path) {
    try {
        const json j = read_json(path);
        if (!j.is_object()) throw Error(path + ": top level is not a JSON object");
        const json& model = hf::field(j, "model");
        if (!model.is_object()) throw Error(path + ": model: missing or not an object");
        // Old files may omit model.type; then a "merges" field is what marks BPE.
        const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
        if (type != "BPE") throw Error(path + ": model.type '" + type + "' is not supported (only BPE)");

        normalizer_ = hf::make_normalizer(hf::field(j, "normalizer"), path + ": normalizer");
        pre_tokenizer_ = hf::make_pre_tokenizer(hf::field(j, "pre_tokenizer"), path + ": pre_tokenizer");
        decoder_ = hf::make_decoder(hf::field(j, "decoder"), path + ": decoder");
        model_ = std::make_unique<hf::BpeModel>(model, path);
        byte_level_ = mentions_byte_level(hf::field(j, "pre_tokenizer")) || mentions_byte_level(hf::field(j, "normalizer"));
        parse_added_tokens(hf::field(j, "added_tokens"));
        parse_post_processor(hf::field(j, "post_processor"), path + ": post_processor");
        for (int32_t id : prefix_) check_template_id(id);
        for (int32_t id : suffix_) check_template_id(id);
        bos_id_ = prefix_.empty() ? -1 : prefix_.front();
        eos_id_ = suffix_.empty() ? -1 : suffix_.back();
        // truncation/padding are deliberately not applied: callers window long texts themselves.
    } catch (const json::exception& e) {  // a field of the wrong JSON type deep inside a stage
        throw Error(path + ": unexpected JSON content: " + e.what());
    }
}

HfBpeTokenizer::~HfBpeTokenizer() = default;

void HfBpeTokenizer::parse_added_tokens(const json& list) {
    vocab_size_ = static_cast<int32_t>(model_->tokens().size());
    if (!list.is_array() && !list.is_null()) throw Error(path_ + ": added_tokens: not an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string where = path_ + ": added_tokens[" + std::to_string(i) + "]";
        const json& t = list[i];
        AddedToken a;
        a.content = hf::get_string(t, "content", where);
        if (!t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0)
            throw Error(where + ".id: missing or not a non-negative integer");
        a.id = t["id"].get<int32_t>();
        a.special = t.value("special", false);
        a.single_word = t.value("single_word", false);
        a.lstrip = t.value("lstrip", false);
        a.rstrip = t.value("rstrip", false);
        a.normalized = t.value("normalized", !a.special);
        a.match = a.content;
        // Like tokenizers, a normalized token is searched for in its normalized form.
        if (a.normalized && normalizer_) normalizer_->apply(a.match);
        vocab_size_ = std::max(vocab_size_, a.id + 1);
        added_.push_back(std::move(a));
    }
    for (const AddedToken& a : added_) {  // pointers taken only once added_ stops growing
        added_by_content_[a.content] = a.id;
        added_by_id_[a.id] = &a;
        if (!a.match.empty()) (a.normalized ? normalized_buckets_ : raw_buckets_)[uint8_t(a.match[0])].push_back(&a);
    }
    for (Buckets* b : {&raw_buckets_, &normalized_buckets_})
        for (auto& bucket : *b)
            std::stable_sort(bucket.begin(), bucket.end(),
                             [](const AddedToken* x, const AddedToken* y) { return x->match.size() > y->match.size(); });
}

void HfBpeTokenizer::parse_post_processor(const json& j, const std::string& where) {
    if (j.is_null()) return;
    const std::string type = hf::get_string(j, "type", where);
    std::vector<int32_t> pre, post;
    if (type == "ByteLevel") {
        return;  // only adjusts offsets
    } else if (type == "Sequence") {
        // Each processor wraps the output of the previous one.
        const json& list = hf::field(j, "processors");
        for (std::size_t i = 0; i < list.size(); ++i)
            parse_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
        return;
    } else if (type == "TemplateProcessing") {
        const json& single = hf::field(j, "single");
        const json& specials = hf::field(j, "special_tokens");
        bool after = false;
        for (std::size_t i = 0; i < single.size(); ++i) {
            const std::string item = where + ".single[" + std::to_string(i) + "]";
            if (single[i].contains("Sequence")) {
                after = true;
            } else if (single[i].contains("SpecialToken")) {
                const std::string name = hf::get_string(single[i]["SpecialToken"], "id", item + ".SpecialToken");
                if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
                    throw Error(where + ".special_tokens: '" + name + "' is missing or has no ids");
                for (const json& id : specials[name]["ids"]) (after ? post : pre).push_back(id.get<int32_t>());
            } else {
                throw Error(item + ": expected a Sequence or SpecialToken entry");
            }
        }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
        for (const char* key : {"cls", "sep"}) {
            const json& v = hf::field(j, key);
            if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer())
                throw Error(where + "." + key + ": expected [token, id]");
            (std::string(key) == "cls" ? pre : post).push_back(v[1].get<int32_t>());
        }
    } else {
        throw Error(where + ".type: post-processor '" + type + "' is not supported");
    }
    prefix_.insert(prefix_.begin(), pre.begin(), pre.end());
    suffix_.insert(suffix_.end(), post.begin(), post.end());
}

void HfBpeTokenizer::check_template_id(int32_t id) const {
    if (id < 0 || id >= vocab_size_)
        throw Error(path_ + ": post_processor: token id " + std::to_string(id) + " is outside the vocabulary (size " +
                    std::to_string(vocab_size_) + ")");
}

void HfBpeTokenizer::set_add_bos(bool on) {
    prefix_.clear();
    if (on && bos_id_ >= 0) prefix_.push_back(bos_id_);
}

void HfBpeTokenizer::set_add_eos(bool on) {
    suffix_.clear();
    if (on && eos_id_ >= 0) suffix_.push_back(eos_id_);
}

std::vector<HfBpeTokenizer::AddedMatch> HfBpeTokenizer::find_added(std::string_view s, const Buckets& buckets) const {
    std::vector<AddedMatch> out;
    std::size_t consumed = 0;  // end of the previous accepted match
    std::size_t i = 0;
    while (i < s.size()) {
        const AddedToken* hit = nullptr;
        for (const AddedToken* a : buckets[static_cast<unsigned char>(s[i])])
            if (s.compare(i, a->match.size(), a->match) == 0) {
                hit = a;
                break;
            }
        if (!hit) {
            ++i;  // tokens are valid UTF-8, so they can only match at character starts
            continue;
        }
        std::size_t begin = i, end = i + hit->match.size();
        i = end;
        if (hit->single_word) {
            std::size_t k = begin > 0 ? char_start_before(s, begin) : 0;
            const bool word_before = begin > 0 && is_word_char(utf8::next(s, k));
            k = end;
            const bool word_after = end < s.size() && is_word_char(utf8::next(s, k));
            if (word_before || word_after) continue;
        }
        if (hit->lstrip) {  // swallow whitespace on the left, but never part of the previous match
            while (begin > consumed) {
                std::size_t b = char_start_before(s, begin), k = b;
                if (!utf8::is_whitespace(utf8::next(s, k))) break;
                begin = b;
            }
        }
        if (hit->rstrip) {
            for (std::size_t k = end; k < s.size();) {
                if (!utf8::is_whitespace(utf8::next(s, k))) break;
                end = k;
            }
            i = end;
        }
        out.push_back({begin, end, hit->id});
        consumed = end;
    }
    return out;
}

std::vector<int32_t> HfBpeTokenizer::encode(const std::string& text, bool add_special) const {
    utf8::validate(text);
    std::vector<int32_t> ids;
    if (add_special) ids = prefix_;
    // Calls f(piece, id, offset) for every added-token match (id >= 0) and every non-empty gap (id -1).
    auto for_each_split = [](std::string_view s, const std::vector<AddedMatch>& matches, auto&& f) {
        std::size_t prev = 0;
        for (const AddedMatch& m : matches) {
            if (m.begin > prev) f(s.substr(prev, m.begin - prev), -1, prev);
            f(s.substr(m.begin, m.end - m.begin), m.id, m.begin);
            prev = m.end;
        }
        if (prev < s.size()) f(s.substr(prev), -1, prev);
    };
    std::vector<hf::Piece> pieces;
    for_each_split(text, find_added(text, raw_buckets_), [&](std::string_view raw, int32_t id, std::size_t raw_off) {
        if (id >= 0) {
            ids.push_back(id);
            return;
        }
        std::string norm(raw);
        if (normalizer_) normalizer_->apply(norm);
        for_each_split(norm, find_added(norm, normalized_buckets_), [&](std::string_view sub, int32_t id2, std::size_t off) {
            if (id2 >= 0) {
                ids.push_back(id2);
                return;
            }
            pieces.assign(1, hf::Piece{std::string(sub), raw_off == 0 && off == 0});
            if (pre_tokenizer_) pre_tokenizer_->apply(pieces);
            for (const hf::Piece& p : pieces) model_->encode_word(p.text, ids);
        });
    });
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
}

const std::string& HfBpeTokenizer::token_ref(int32_t id) const {
    if (id < 0 || id >= vocab_size_)
        throw Error("token id " + std::to_string(id) + " is out of range (vocabulary size " +
                    std::to_string(vocab_size_) + ")");
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return it->second->content;
    static const std::string empty;
    const auto& tokens = model_->tokens();
    return static_cast<std::size_t>(id) < tokens.size() ? tokens[static_cast<std::size_t>(id)] : empty;
}

std::string HfBpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        const std::string& t = token_ref(id);
        if (skip_special) {
            auto it = added_by_id_.find(id);
            if (it != added_by_id_.end() && it->second->special) continue;
        }
        tokens.push_back(t);
    }
    std::string out;
    if (decoder_) {
        decoder_->apply(tokens);
        for (const std::string& t : tokens) out += t;
    } else {  // tokenizers joins with spaces when there is no decoder
        for (std::size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
    }
    return out;
}

int32_t HfBpeTokenizer::vocab_size() const { return vocab_size_; }

std::string HfBpeTokenizer::token(int32_t id) const { return token_ref(id); }

int32_t HfBpeTokenizer::token_to_id(const std::string& token) const {
    auto it = added_by_content_.find(token);
    return it != added_by_content_.end() ? it->second : model_->token_to_id(token);
}

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& tokenizer_json_path) {
    return std::make_unique<HfBpeTokenizer>(tokenizer_json_path);
}

}  // namespace quench
