#include "io/gguf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "common/error.h"
#include "common/json_file.h"
#include "io/gguf_writer.h"
#include "model/tokenizer.h"

namespace quench {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Split regexes of the byte-level pre-tokenizers llama.cpp knows by name (llama-vocab.cpp). llama.cpp
// itself identifies them by hashing a test string's tokens, which needs the Python tokenizer; comparing
// the regex text is the offline equivalent for the families we can recognise.
const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json read_json(const fs::path& p, bool optional) {
    return optional ? read_json_file_if_exists(p.string()) : read_json_file(p.string());
}

// The pre-tokenizer (or normalizer/decoder) nodes, with Sequences flattened.
void flatten(const json& node, const char* list_key, std::vector<json>& out) {
    if (!node.is_object()) return;
    if (node.value("type", "") == "Sequence" && node.contains(list_key) && node[list_key].is_array()) {
        for (const json& n : node[list_key]) flatten(n, list_key, out);
        return;
    }
    out.push_back(node);
}

bool has_type(const std::vector<json>& nodes, const std::string& type) {
    for (const json& n : nodes)
        if (n.value("type", "") == type) return true;
    return false;
}

std::string byte_level_pre(const std::vector<json>& pre, std::vector<std::string>& notes) {
    std::vector<std::string> regexes;
    bool bytelevel_regex = false, digits = false;
    for (const json& n : pre) {
        const std::string type = n.value("type", "");
        if (type == "Split" && n.contains("pattern") && n["pattern"].is_object() && n["pattern"].contains("Regex"))
            regexes.push_back(n["pattern"]["Regex"].get<std::string>());
        if (type == "ByteLevel" && n.value("use_regex", true)) bytelevel_regex = true;
        if (type == "Digits" && n.value("individual_digits", false)) digits = true;
    }
    if (regexes.size() == 1 && regexes[0] == kQwen2Regex && !bytelevel_regex) return "qwen2";
    if (regexes.size() == 1 && regexes[0] == kLlama3Regex && !bytelevel_regex) return "llama-bpe";
    if (regexes.empty() && bytelevel_regex && !digits) return "gpt-2";
    if (regexes.empty() && bytelevel_regex && digits) return "smollm";
    notes.push_back("pre-tokenizer not recognised; wrote tokenizer.ggml.pre = 'default' (llama.cpp's GPT-2 regex)");
    return "default";
}

bool is_byte_token(const std::string& t) {
    auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
    return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// "pad_token": "<pad>" | {"content": "<pad>"} | null
std::string token_setting(const json& j, const char* key) {
    if (!j.is_object() || !j.contains(key)) return "";
    const json& v = j[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return "";
}

}  // namespace

GgufVocab gguf_vocab_from_model_dir(const std::string& dir_text) {
    const fs::path dir(dir_text);
    const fs::path tj_path = dir / "tokenizer.json";
    if (!fs::exists(tj_path)) {
        if (fs::exists(dir / "tokenizer.model"))
            throw Error((dir / "tokenizer.model").string() +
                        ": GGUF export needs the SentencePiece piece scores and types, which "
                        "SentencePieceBackend does not expose yet; provide a tokenizer.json");
        throw Error(dir_text + ": no tokenizer.json or tokenizer.model found");
    }
    const std::string path = tj_path.string();
    const json tj = read_json(tj_path, false);
    if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
        throw Error(path + ": model: missing or not an object");
    const json& model = tj["model"];
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") throw Error(path + ": model.type: '" + type + "' is not supported for GGUF export (BPE only)");
    if (!model.contains("vocab") || !model["vocab"].is_object()) throw Error(path + ": model.vocab: missing");
    if (!model.contains("merges") || !model["merges"].is_array()) throw Error(path + ": model.merges: missing");

    GgufVocab v;
    std::vector<json> pre, norm, dec;
    flatten(tj.value("pre_tokenizer", json()), "pretokenizers", pre);
    flatten(tj.value("normalizer", json()), "normalizers", norm);
    flatten(tj.value("decoder", json()), "decoders", dec);
    const bool byte_level = has_type(pre, "ByteLevel") || has_type(dec, "ByteLevel");
    v.model = byte_level ? "gpt2" : "llama";

    // id -> token over the BPE vocabulary and the added tokens (which may reuse or extend its ids).
    std::unordered_map<std::string, int64_t> ids;
    std::map<int64_t, std::string> by_id;
    for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
            throw Error(path + ": model.vocab['" + it.key() + "']: not a non-negative integer id");
        by_id[it.value().get<int64_t>()] = it.key();
        ids[it.key()] = it.value().get<int64_t>();
    }
    std::map<int64_t, bool> added_special;
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
        for (const json& a : tj["added_tokens"]) {
            if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
                throw Error(path + ": added_tokens: an entry lacks an integer id or a string content");
            const int64_t id = a["id"].get<int64_t>();
            if (id < 0) throw Error(path + ": added_tokens: negative id " + std::to_string(id));
            by_id[id] = a["content"].get<std::string>();
            ids[by_id[id]] = id;
            added_special[id] = a.value("special", false);
        }
    const int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
        auto it = ids.find(model["unk_token"].get<std::string>());
        if (it != ids.end()) v.unk_id = it->second;
    }

    v.tokens.resize(std::size_t(n));
    v.token_types.assign(std::size_t(n), int32_t(GgufTokenType::Normal));
    for (int64_t id = 0; id < n; ++id) {
        auto it = by_id.find(id);
        GgufTokenType t = GgufTokenType::Normal;
        if (it == by_id.end()) {
            v.tokens[id] = "[PAD" + std::to_string(id) + "]";
            t = GgufTokenType::Unused;
        } else {
            v.tokens[id] = it->second;
            auto a = added_special.find(id);
            if (id == v.unk_id) t = GgufTokenType::Unknown;
            else if (a != added_special.end()) t = a->second ? GgufTokenType::Control : GgufTokenType::UserDefined;
            else if (!byte_level && is_byte_token(it->second)) t = GgufTokenType::Byte;
        }
        v.token_types[id] = int32_t(t);
    }

    // Merges: "a b" strings (older files) or ["a", "b"] pairs (tokenizers >= 0.20).
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(model["merges"].size());
    for (const json& m : model["merges"]) {
        if (m.is_string()) {
            const std::string s = m.get<std::string>();
            const std::size_t sp = s.find(' ', 1);
            if (sp == std::string::npos) throw Error(path + ": model.merges: '" + s + "' is not 'a b'");
            merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        } else {
            throw Error(path + ": model.merges: entry " + std::to_string(merges.size()) + " is neither 'a b' nor [a, b]");
        }
    }

    if (byte_level) {
        v.pre = byte_level_pre(pre, v.notes);
        for (const auto& [a, b] : merges) v.merges.push_back(a + " " + b);
    } else {
        v.pre = "default";
        // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose concatenation has the highest
        // score; HF BPE merges the pair of lowest merge rank. Scoring each merged token by minus the rank of
        // the first merge producing it makes the two agree (SentencePiece's own BPE models score pieces the
        // same way). Tokens no merge produces rank below every merge; special and byte tokens get 0, as in
        // SentencePiece models.
        const float unmerged = -float(merges.size() + 1);
        v.scores.assign(std::size_t(n), unmerged);
        for (int64_t id = 0; id < n; ++id)
            if (v.token_types[id] != int32_t(GgufTokenType::Normal)) v.scores[id] = 0.0f;
        std::vector<bool> scored(std::size_t(n), false);
        for (std::size_t r = 0; r < merges.size(); ++r) {
            auto it = ids.find(merges[r].first + merges[r].second);
            if (it == ids.end() || scored[it->second]) continue;
            scored[it->second] = true;
            if (v.token_types[it->second] == int32_t(GgufTokenType::Normal)) v.scores[it->second] = -float(r + 1);
        }
        bool prefix = false;
        for (const json& node : norm)
            if (node.value("type", "") == "Prepend" && node.value("prepend", "") == "\xE2\x96\x81") prefix = true;
        for (const json& node : pre)
            if (node.value("type", "") == "Metaspace")
                prefix = node.value("add_prefix_space", false) || node.value("prepend_scheme", "never") != "never";
        v.add_space_prefix = prefix;
    }

    // BOS/EOS exactly as the rest of Quench sees them: the loader applies tokenizer_config.json and
    // special_tokens_map.json, and encoding an empty text shows what the post-processor adds.
    const std::unique_ptr<Tokenizer> tok = load_tokenizer(dir_text);
    v.bos_id = tok->bos_id();
    v.eos_id = tok->eos_id();
    const std::vector<int32_t> empty = tok->encode("", true);
    v.add_bos = !empty.empty() && v.bos_id >= 0 && empty.front() == v.bos_id;
    v.add_eos = !empty.empty() && v.eos_id >= 0 && empty.back() == v.eos_id && (empty.size() > 1 || !v.add_bos);

    const fs::path cfg_path = dir / "tokenizer_config.json", map_path = dir / "special_tokens_map.json";
    const json cfg = read_json(cfg_path, true), smap = read_json(map_path, true);
    std::string pad = token_setting(cfg, "pad_token");
    if (pad.empty()) pad = token_setting(smap, "pad_token");
    if (!pad.empty()) {
        auto it = ids.find(pad);
        if (it != ids.end()) v.pad_id = it->second;
        else v.notes.push_back("pad_token '" + pad + "' is not in the vocabulary; no padding id written");
    }
    if (cfg.is_object() && cfg.contains("chat_template") && cfg["chat_template"].is_string())
        v.chat_template = cfg["chat_template"].get<std::string>();
    return v;
}

void pad_gguf_vocab(GgufVocab& v, int64_t vocab_size, const std::string& where) {
    const int64_t n = int64_t(v.tokens.size());
    if (n > vocab_size)
        throw Error(where + ": the tokenizer has " + std::to_string(n) + " tokens but the model only " +
                    std::to_string(vocab_size) + " embedding rows");
    for (int64_t id = n; id < vocab_size; ++id) {
        v.tokens.push_back("[PAD" + std::to_string(id) + "]");
        v.token_types.push_back(int32_t(GgufTokenType::Unused));
        if (!v.scores.empty()) v.scores.push_back(0.0f);
    }
}

void add_gguf_vocab(GgufWriter& w, const GgufVocab& v) {
    w.set("tokenizer.ggml.model", GgufValue::string(v.model));
    w.set("tokenizer.ggml.pre", GgufValue::string(v.pre));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array(v.tokens));
    if (!v.scores.empty()) w.set("tokenizer.ggml.scores", GgufValue::f32_array(v.scores));
    w.set("tokenizer.ggml.token_type", GgufValue::i32_array(v.token_types));
    // llama.cpp refuses a gpt2 vocabulary without the merges key, even when there are no merges (a pure
    // byte-level vocabulary such as the synthetic checkpoints').
    if (v.model == "gpt2") w.set("tokenizer.ggml.merges", GgufValue::string_array(v.merges));
    auto id = [&](const char* key, int64_t value) {
        if (value >= 0) w.set(key, GgufValue::u32(uint32_t(value)));
    };
    id("tokenizer.ggml.bos_token_id", v.bos_id);
    id("tokenizer.ggml.eos_token_id", v.eos_id);
    id("tokenizer.ggml.unknown_token_id", v.unk_id);
    id("tokenizer.ggml.padding_token_id", v.pad_id);
    w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(v.add_bos));
    w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(v.add_eos));
    if (v.add_space_prefix) w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(*v.add_space_prefix));
    if (!v.chat_template.empty()) w.set("tokenizer.chat_template", GgufValue::string(v.chat_template));
}

}  // namespace quench
