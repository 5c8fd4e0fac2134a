#include "model/hf_bpe_model.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "common/error.h"
#include "model/hf_pipeline.h"
#include "model/utf8.h"

namespace quench::hf {

using nlohmann::json;

namespace {

// Longer pre-tokens are rare and rarely repeat (the SentencePiece-style files have no pre-tokenizer, so
// a whole text is one "word"); caching them would only hold memory.
constexpr std::size_t kMaxCachedWordBytes = 256;
constexpr std::size_t kMaxCacheEntries = 1 << 18;

std::string json_string(const json& j, const std::string& field) {
    if (!j.is_string()) throw Error(field + ": not a string");
    return j.get<std::string>();
}

}  // namespace

BpeModel::BpeModel(const json& m, const std::string& where) {
    const std::string w = where + ": model";
    if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0.0)
        throw Error(w + ".dropout: BPE dropout is not supported (it makes encoding random)");
    const json& vocab = field(m, "vocab");
    if (!vocab.is_object()) throw Error(w + ".vocab: missing or not an object");

    // Two passes: size the id table, then fill it and index views into its (now fixed) strings.
    int64_t max_id = -1;
    for (const auto& item : vocab.items()) {
        if (!item.value().is_number_integer() || item.value().get<int64_t>() < 0 ||
            item.value().get<int64_t>() > INT32_MAX)
            throw Error(w + ".vocab['" + item.key() + "']: id is not a non-negative integer");
        max_id = std::max(max_id, item.value().get<int64_t>());
    }
    id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
    std::vector<bool> used(id_to_token_.size());
    token_to_id_.reserve(vocab.size());
    for (const auto& item : vocab.items()) {
        const auto id = item.value().get<std::size_t>();
        // A reused id would overwrite a string that an earlier view already points into.
        if (used[id]) throw Error(w + ".vocab['" + item.key() + "']: id " + std::to_string(id) + " is used twice");
        used[id] = true;
        id_to_token_[id] = item.key();
        token_to_id_.emplace(std::string_view(id_to_token_[id]), static_cast<int32_t>(id));
    }

    fuse_unk_ = m.value("fuse_unk", false);
    byte_fallback_ = m.value("byte_fallback", false);
    ignore_merges_ = m.value("ignore_merges", false);
    if (m.contains("continuing_subword_prefix") && !m["continuing_subword_prefix"].is_null())
        prefix_ = json_string(m["continuing_subword_prefix"], w + ".continuing_subword_prefix");
    if (m.contains("end_of_word_suffix") && !m["end_of_word_suffix"].is_null())
        suffix_ = json_string(m["end_of_word_suffix"], w + ".end_of_word_suffix");
    if (m.contains("unk_token") && !m["unk_token"].is_null()) {
        const std::string unk = json_string(m["unk_token"], w + ".unk_token");
        unk_id_ = token_to_id(unk);
        if (unk_id_ < 0) throw Error(w + ".unk_token: '" + unk + "' is not in the vocabulary");
    }
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        byte_ids_[b] = token_to_id(name);
    }

    const json& merges = field(m, "merges");
    if (!merges.is_array() && !merges.is_null()) throw Error(w + ".merges: not an array");
    merges_.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
        const std::string field = w + ".merges[" + std::to_string(i) + "]";
        const json& e = merges[i];
        std::string a, b;
        if (e.is_string()) {  // older files: "a b"
            const std::string s = e.get<std::string>();
            const std::size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                throw Error(field + ": '" + s + "' is not two tokens separated by one space");
            a = s.substr(0, sp);
            b = s.substr(sp + 1);
        } else if (e.is_array() && e.size() == 2) {  // newer files: ["a", "b"]
            a = json_string(e[0], field);
            b = json_string(e[1], field);
        } else {
            throw Error(field + ": expected \"a b\" or [\"a\", \"b\"]");
        }
        const int32_t ia = token_to_id(a), ib = token_to_id(b);
        const std::string merged = a + b.substr(std::min(prefix_.size(), b.size()));
        const int32_t inew = token_to_id(merged);
        if (ia < 0 || ib < 0 || inew < 0)
            throw Error(field + ": token '" + (ia < 0 ? a : ib < 0 ? b : merged) + "' is not in the vocabulary");
        merges_[pair_key(ia, ib)] = Merge{static_cast<int32_t>(i), inew};  // a repeated pair keeps its last rank
    }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
    auto it = token_to_id_.find(token);
    return it == token_to_id_.end() ? -1 : it->second;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
    auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_word(const std::string& word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        const int32_t id = token_to_id(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(word);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const std::size_t start = out.size();
    merge_word(word, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        if (cache_.size() < kMaxCacheEntries) cache_.emplace(word, std::vector<int32_t>(out.begin() + start, out.end()));
    }
}

void BpeModel::merge_word(const std::string& word, std::vector<int32_t>& out) const {
    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        bool alive;
    };
    std::vector<Symbol> syms;
    syms.reserve(word.size());
    auto add = [&syms](int32_t id) {
        const auto n = static_cast<int32_t>(syms.size());
        if (n > 0) syms.back().next = n;
        syms.push_back({id, n - 1, -1, true});
    };

    // Initial symbols: one per character, with unknown characters resolved the way the Rust code does.
    bool have_unk = false;
    std::string s;
    for (std::size_t i = 0; i < word.size();) {
        const std::size_t at = i;
        i += utf8::seq_len(static_cast<unsigned char>(word[i]));
        s.assign(word, at, i - at);
        if (at > 0 && !prefix_.empty()) s.insert(0, prefix_);
        if (i >= word.size() && !suffix_.empty()) s += suffix_;
        const int32_t id = token_to_id(s);
        if (id >= 0) {
            if (have_unk) add(unk_id_);
            have_unk = false;
            add(id);
            continue;
        }
        if (byte_fallback_) {
            bool all = true;
            for (unsigned char c : s) all = all && byte_ids_[c] >= 0;
            if (all) {
                // Like the Rust code, a pending fused unknown is not flushed first, so it lands after
                // these byte tokens; this only matters for vocabularies with some but not all byte tokens.
                for (unsigned char c : s) add(byte_ids_[c]);
                continue;
            }
        }
        if (unk_id_ < 0) continue;  // no unk token: the character is dropped, as in the Rust code
        if (have_unk && !fuse_unk_) add(unk_id_);
        have_unk = true;
    }
    if (have_unk) add(unk_id_);

    // Rank-ordered merging: the lowest merge rank first, ties broken by the leftmost position. Stale
    // queue entries are recognised by re-checking the pair, exactly as tokenizers' Word::merge_all.
    struct Candidate {
        int32_t rank;
        int32_t pos;
        int32_t new_id;
        bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate> queue;
    for (std::size_t k = 0; k + 1 < syms.size(); ++k)
        if (const Merge* m = find_merge(syms[k].id, syms[k + 1].id))
            queue.push({m->rank, static_cast<int32_t>(k), m->new_id});
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& cur = syms[top.pos];
        if (!cur.alive || cur.next < 0) continue;
        Symbol& right = syms[cur.next];
        const Merge* m = find_merge(cur.id, right.id);
        if (!m || m->new_id != top.new_id) continue;
        cur.id = top.new_id;
        right.alive = false;
        cur.next = right.next;
        if (cur.next >= 0) syms[cur.next].prev = top.pos;
        if (cur.prev >= 0)
            if (const Merge* pm = find_merge(syms[cur.prev].id, cur.id)) queue.push({pm->rank, cur.prev, pm->new_id});
        if (cur.next >= 0)
            if (const Merge* nm = find_merge(cur.id, syms[cur.next].id)) queue.push({nm->rank, top.pos, nm->new_id});
    }
    for (const Symbol& sym : syms)
        if (sym.alive) out.push_back(sym.id);
}

}  // namespace quench::hf
