#pragma once
// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, ranked merges, unknown
// handling (byte_fallback, fuse_unk) and the per-word merge loop of the Rust `tokenizers` library.
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace quench::hf {

class BpeModel {
public:
    // `model` is the JSON object; `where` names the file for error messages.
    BpeModel(const nlohmann::json& model, const std::string& where);
    BpeModel(const BpeModel&) = delete;
    BpeModel& operator=(const BpeModel&) = delete;

    // Appends the ids of one pre-token.
    void encode_word(const std::string& word, std::vector<int32_t>& out) const;

    int32_t token_to_id(std::string_view token) const;  // -1 when absent
    // id -> token; ids inside the range that the vocabulary skips map to "".
    const std::vector<std::string>& tokens() const { return id_to_token_; }

private:
    struct Merge {
        int32_t rank;
        int32_t new_id;
    };
    static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
    const Merge* find_merge(int32_t a, int32_t b) const;
    void merge_word(const std::string& word, std::vector<int32_t>& out) const;

    std::vector<std::string> id_to_token_;
    std::unordered_map<std::string_view, int32_t> token_to_id_;  // views into id_to_token_, never resized
    std::unordered_map<uint64_t, Merge> merges_;
    std::array<int32_t, 256> byte_ids_{};  // ids of the <0xXX> tokens, -1 when absent
    int32_t unk_id_ = -1;
    bool fuse_unk_ = false;
    bool byte_fallback_ = false;
    bool ignore_merges_ = false;
    std::string prefix_;  // continuing_subword_prefix
    std::string suffix_;  // end_of_word_suffix

    // Words repeat a lot in real text (Zipf), so merged results are memoised. Shared by concurrent
    // encode() calls, hence the mutex; bounded so that one huge input cannot grow it without limit.
    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace quench::hf
