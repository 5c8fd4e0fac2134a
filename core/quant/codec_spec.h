#pragma once
// A codec setting as a small value type: "rtn:b=4,g=128,sym", "liftquant:D=24,d=10". Parsed against the
// codec's parameter schema (codec_registry.h), printed canonically (every parameter, schema order), so the
// CLI, the GUI and the run store name settings identically.
#include <map>
#include <string>
#include <vector>

namespace quench {

enum class ParamType { Int = 1, Real, Flag, Choice };

// One codec parameter: what the CLI parses, the GUI builds a form field from, and the store records.
struct ParamDef {
    std::string name;
    ParamType type = ParamType::Int;
    std::string default_value;        // as text; flags: "0" or "1"
    double min = 0, max = 0;          // Int/Real range (inclusive); ignored when min == max
    std::vector<std::string> choices; // Choice: allowed values; Int: when non-empty, allowed values
    std::string help;
};

class CodecSpec {
public:
    // Parses "name:key=value,flag,..."; validates names, types and ranges against the registry's schema,
    // fills defaults. Throws quench::Error naming the offending part ("rtn:b=0: b must be in [2, 8]").
    static CodecSpec parse(const std::string& text);

    const std::string& codec() const { return codec_; }
    std::string to_string() const;  // canonical form
    int64_t get_int(const std::string& key) const;
    double get_real(const std::string& key) const;
    bool get_flag(const std::string& key) const;
    const std::string& get_choice(const std::string& key) const;
    const std::map<std::string, std::string>& values() const { return values_; }
    bool operator==(const CodecSpec& o) const { return codec_ == o.codec_ && values_ == o.values_; }
    bool operator!=(const CodecSpec& o) const { return !(*this == o); }

private:
    const std::string& raw(const std::string& key) const;
    std::string codec_;
    std::map<std::string, std::string> values_;  // every schema parameter, normalised text
};

}  // namespace quench
