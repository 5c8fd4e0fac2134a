#include "common/json_file.h"

#include <filesystem>

#include "common/error.h"
#include "common/read_file.h"

namespace quench {

nlohmann::json read_json_file(const std::string& path) {
    const std::string text = read_file(path, "JSON file");
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw Error(path + ": not valid JSON: " + e.what());
    }
}

nlohmann::json read_json_file_if_exists(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return nlohmann::json();
    return read_json_file(path);
}

}  // namespace quench
