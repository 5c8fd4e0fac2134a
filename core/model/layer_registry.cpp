#include "model/layer_registry.h"

#include <cctype>

#include <fnmatch.h>

#include <regex>

#include "common/error.h"

namespace quench {
namespace {
constexpr const char* kKindNames[] = {"", "q", "k", "v", "o", "gate", "up", "down", "lm_head"};
}

const char* layer_kind_name(LayerKind k) { return kKindNames[static_cast<int>(k)]; }

std::optional<LayerKind> layer_kind_from_name(const std::string& s) {
    for (int i = 1; i <= static_cast<int>(LayerKind::LmHead); ++i)
        if (s == kKindNames[i]) return static_cast<LayerKind>(i);
    return std::nullopt;
}

std::string short_layer_name(const std::string& name) {
    std::string n = name;
    const std::string weight = ".weight";
    if (n.size() > weight.size() && n.compare(n.size() - weight.size(), weight.size(), weight) == 0)
        n.resize(n.size() - weight.size());
    const std::size_t at = n.find("layers.");
    if (at == std::string::npos || (at > 0 && n[at - 1] != '.')) return n;
    std::size_t p = at + 7, digits = 0;
    while (p + digits < n.size() && std::isdigit(static_cast<unsigned char>(n[p + digits]))) ++digits;
    if (digits == 0 || p + digits >= n.size() || n[p + digits] != '.') return n;
    std::string module = n.substr(n.rfind('.') + 1);
    const std::string proj = "_proj";
    if (module.size() > proj.size() && module.compare(module.size() - proj.size(), proj.size(), proj) == 0)
        module.resize(module.size() - proj.size());
    return n.substr(p, digits) + "." + module;
}

std::optional<std::size_t> LayerRegistry::index_of(const std::string& name) const {
    std::string n = name;
    const std::string suffix = ".weight";
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        n.resize(n.size() - suffix.size());
    for (std::size_t i = 0; i < layers_.size(); ++i)
        if (layers_[i].name == n) return i;
    return std::nullopt;
}

std::vector<std::size_t> LayerRegistry::select_glob(const std::string& globs) const {
    std::vector<std::string> patterns;
    std::size_t start = 0;
    while (start <= globs.size()) {
        std::size_t comma = globs.find(',', start);
        if (comma == std::string::npos) comma = globs.size();
        if (comma > start) patterns.push_back(globs.substr(start, comma - start));
        start = comma + 1;
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < layers_.size(); ++i)
        for (const auto& p : patterns)
            if (fnmatch(p.c_str(), layers_[i].name.c_str(), 0) == 0) {
                out.push_back(i);
                break;
            }
    if (out.empty()) throw Error("layer glob '" + globs + "' matches no quantizable layer");
    return out;
}

std::vector<std::size_t> LayerRegistry::select_regex(const std::string& pattern) const {
    std::regex re;
    try {
        re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        throw Error("layer regex '" + pattern + "' is invalid: " + e.what());
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < layers_.size(); ++i)
        if (std::regex_search(layers_[i].name, re)) out.push_back(i);
    if (out.empty()) throw Error("layer regex '" + pattern + "' matches no quantizable layer");
    return out;
}

std::vector<std::size_t> LayerRegistry::select_kind(LayerKind kind) const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < layers_.size(); ++i)
        if (layers_[i].kind == kind) out.push_back(i);
    return out;
}

int64_t LayerRegistry::total_params() const {
    int64_t n = 0;
    for (const auto& l : layers_) n += l.params();
    return n;
}

}  // namespace quench
