#pragma once
// Reading a JSON file with errors that name it: config.json, tokenizer.json, safetensors indexes.
#include <nlohmann/json.hpp>

#include <string>

namespace quench {

// Throws quench::Error "<path>: cannot open" or "<path>: not valid JSON: ...".
nlohmann::json read_json_file(const std::string& path);
// The same, but a missing file gives a null json (optional files such as tokenizer_config.json).
nlohmann::json read_json_file_if_exists(const std::string& path);

}  // namespace quench
