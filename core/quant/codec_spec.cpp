#include "quant/codec_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/error.h"
#include "quant/codec_registry.h"

namespace quench {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        const std::size_t pos = s.find(sep, start);
        out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
        if (pos == std::string::npos) return out;
        start = pos + 1;
    }
}

bool parse_number(const std::string& s, double* out) {
    char* end = nullptr;
    *out = std::strtod(s.c_str(), &end);
    return !s.empty() && end == s.c_str() + s.size() && std::isfinite(*out);
}

std::string format_real(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
}

std::string range_text(const ParamDef& p) {
    auto num = [&](double v) { return p.type == ParamType::Int ? std::to_string(static_cast<int64_t>(v)) : format_real(v); };
    return "[" + num(p.min) + ", " + num(p.max) + "]";
}

// Checks one value against its definition and returns its canonical text.
std::string normalise(const std::string& where, const ParamDef& p, const std::string& value) {
    auto bad = [&](const std::string& why) { return Error(where + ": " + p.name + " " + why); };
    switch (p.type) {
        case ParamType::Flag:
            if (value == "1" || value == "true" || value.empty()) return "1";
            if (value == "0" || value == "false") return "0";
            throw bad("is a flag (use " + p.name + " or " + p.name + "=0)");
        case ParamType::Choice:
            if (std::find(p.choices.begin(), p.choices.end(), value) == p.choices.end()) {
                std::string list;
                for (const auto& c : p.choices) list += (list.empty() ? "" : ", ") + c;
                throw bad("must be one of " + list + ", got '" + value + "'");
            }
            return value;
        case ParamType::Int:
        case ParamType::Real: {
            double v = 0;
            if (!parse_number(value, &v)) throw bad("must be a number, got '" + value + "'");
            if (p.type == ParamType::Int && v != std::floor(v)) throw bad("must be an integer, got '" + value + "'");
            if (p.min != p.max && (v < p.min || v > p.max)) throw bad("must be in " + range_text(p) + ", got " + value);
            const std::string text = p.type == ParamType::Int ? std::to_string(static_cast<int64_t>(v)) : format_real(v);
            if (!p.choices.empty() && std::find(p.choices.begin(), p.choices.end(), text) == p.choices.end()) {
                std::string list;
                for (const auto& c : p.choices) list += (list.empty() ? "" : ", ") + c;
                throw bad("must be one of " + list + ", got " + value);
            }
            return text;
        }
    }
    throw bad("has an unknown type");
}

}  // namespace

CodecSpec CodecSpec::parse(const std::string& text) {
    const std::size_t colon = text.find(':');
    CodecSpec spec;
    spec.codec_ = text.substr(0, colon);
    const CodecTraits* traits = find_codec(spec.codec_);
    if (!traits)
        throw Error("codec spec '" + text + "': unknown codec '" + spec.codec_ + "' (known: " + codec_names() + ")");
    const auto& schema = traits->params();
    for (const auto& p : schema) spec.values_[p.name] = normalise("codec spec '" + text + "'", p, p.default_value);
    if (colon == std::string::npos || colon + 1 == text.size()) return spec;
    for (const std::string& item : split(text.substr(colon + 1), ',')) {
        if (item.empty()) throw Error("codec spec '" + text + "': empty parameter");
        const std::size_t eq = item.find('=');
        const std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
        auto def = std::find_if(schema.begin(), schema.end(), [&](const ParamDef& p) { return p.name == key; });
        if (def == schema.end()) {
            std::string known;
            for (const auto& p : schema) known += (known.empty() ? "" : ", ") + p.name;
            throw Error("codec spec '" + text + "': " + spec.codec_ + " has no parameter '" + key + "' (it has: " + known + ")");
        }
        if (eq == std::string::npos && def->type != ParamType::Flag)
            throw Error("codec spec '" + text + "': " + key + " needs a value (" + key + "=...)");
        spec.values_[key] = normalise("codec spec '" + text + "'", *def, value);
    }
    return spec;
}

std::string CodecSpec::to_string() const {
    std::string out = codec_;
    const CodecTraits* traits = find_codec(codec_);
    if (!traits) return out;
    char sep = ':';
    for (const auto& p : traits->params()) {
        const std::string& v = values_.at(p.name);
        if (p.type == ParamType::Flag) {
            // Flags print only when on, or as "name=0" when off against a default of on.
            const bool default_on = p.default_value == "1" || p.default_value == "true";
            if (v == "0" && !default_on) continue;
            out += sep + p.name + (v == "0" ? "=0" : "");
        } else {
            out += sep + p.name + "=" + v;
        }
        sep = ',';
    }
    return out;
}

const std::string& CodecSpec::raw(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw Error("codec " + codec_ + " has no parameter '" + key + "'");
    return it->second;
}

int64_t CodecSpec::get_int(const std::string& key) const { return std::stoll(raw(key)); }
double CodecSpec::get_real(const std::string& key) const { return std::stod(raw(key)); }
bool CodecSpec::get_flag(const std::string& key) const { return raw(key) == "1"; }
const std::string& CodecSpec::get_choice(const std::string& key) const { return raw(key); }

}  // namespace quench
