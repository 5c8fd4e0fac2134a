#include "common/json_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace quench {

nlohmann::json read_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    try {
        return nlohmann::json::parse(text.str());
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
