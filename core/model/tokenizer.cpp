// load_tokenizer: picks the tokenizer file of a model directory and applies the BOS/EOS settings that
// transformers keeps outside it (tokenizer_config.json, special_tokens_map.json).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "common/json_file.h"
#include "model/hf_bpe_tokenizer.h"
#include "model/sentencepiece_tokenizer.h"

namespace quench {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A bos_token/eos_token setting: given says the key exists; an empty content means it is null.
struct TokenSetting {
    bool given = false;
    std::string content;
    std::string source;  // "file: key", for error messages
};

struct SpecialSettings {
    TokenSetting bos, eos;
    std::optional<bool> add_bos, add_eos;
};

json read_optional_json(const fs::path& p) { return read_json_file_if_exists(p.string()); }

// "bos_token": "<s>" | {"content": "<s>", ...} | null. Leaves `out` untouched when the key is absent.
void read_token(const json& j, const char* key, const fs::path& file, TokenSetting& out) {
    if (!j.is_object() || !j.contains(key)) return;
    const json& v = j[key];
    const std::string source = file.string() + ": " + key;
    if (v.is_null()) {
        out = {true, "", source};
    } else if (v.is_string()) {
        out = {true, v.get<std::string>(), source};
    } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
        out = {true, v["content"].get<std::string>(), source};
    } else {
        throw Error(source + ": expected a string, {\"content\": ...} or null");
    }
}

std::optional<bool> read_flag(const json& j, const char* key, const fs::path& file) {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return std::nullopt;
    if (!j[key].is_boolean()) throw Error(file.string() + ": " + key + ": expected true or false");
    return j[key].get<bool>();
}

SpecialSettings read_settings(const fs::path& dir) {
    SpecialSettings s;
    const fs::path config_path = dir / "tokenizer_config.json", map_path = dir / "special_tokens_map.json";
    const json config = read_optional_json(config_path), map = read_optional_json(map_path);
    // tokenizer_config.json wins over special_tokens_map.json, as in transformers.
    read_token(map, "bos_token", map_path, s.bos);
    read_token(map, "eos_token", map_path, s.eos);
    read_token(config, "bos_token", config_path, s.bos);
    read_token(config, "eos_token", config_path, s.eos);
    s.add_bos = read_flag(config, "add_bos_token", config_path);
    s.add_eos = read_flag(config, "add_eos_token", config_path);
    return s;
}

// Works for both concrete tokenizers, which share these setters.
template <typename T>
void apply_settings(T& tok, const SpecialSettings& s) {
    auto resolve = [&tok](const TokenSetting& t) {
        if (t.content.empty()) return int32_t{-1};
        const int32_t id = tok.token_to_id(t.content);
        if (id < 0) throw Error(t.source + ": '" + t.content + "' is not in the tokenizer's vocabulary");
        return id;
    };
    if (s.bos.given) tok.set_bos_id(resolve(s.bos));
    if (s.eos.given) tok.set_eos_id(resolve(s.eos));
    if (s.add_bos) tok.set_add_bos(*s.add_bos);
    if (s.add_eos) tok.set_add_eos(*s.add_eos);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
    const fs::path dir(model_dir);
    if (fs::exists(dir / "tokenizer.json")) {
        auto tok = std::make_unique<HfBpeTokenizer>((dir / "tokenizer.json").string());
        apply_settings(*tok, read_settings(dir));
        return tok;
    }
    if (fs::exists(dir / "tokenizer.model")) {
        auto tok = std::make_unique<SentencePieceTokenizer>((dir / "tokenizer.model").string());
        apply_settings(*tok, read_settings(dir));
        return tok;
    }
    throw Error(model_dir + ": no tokenizer.json or tokenizer.model found");
}

}  // namespace quench
