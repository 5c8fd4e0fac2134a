// JSON for allocation problems and results. Reading goes field by field so that a wrong type names its path
// instead of surfacing as nlohmann's generic "type must be number".
#include "alloc/allocation_json.h"

#include <cmath>

#include "common/error.h"

namespace quench {

using nlohmann::json;

// Arrays are read element by element with the index in the path (declared first: the readers below call them).
void from_json(const json& j, std::vector<std::string>& v);
void from_json(const json& j, std::vector<std::vector<std::string>>& v);
void from_json(const json& j, std::vector<AllocCandidate>& v);
void from_json(const json& j, std::vector<AllocLayer>& v);
void from_json(const json& j, std::vector<LayerChoice>& v);

namespace {

constexpr const char* kProblemFormat = "quench.alloc.problem";
constexpr const char* kAllocationFormat = "quench.alloc.allocation";

// Where in the document a value sits, for messages; nlohmann's own exceptions never escape from_json here.
thread_local std::string tl_path;

struct PathScope {
    std::string saved;
    explicit PathScope(const std::string& add) : saved(tl_path) { tl_path += add; }
    ~PathScope() { tl_path = saved; }
};

[[noreturn]] void bad(const std::string& what) {
    throw Error("allocation JSON: " + (tl_path.empty() ? std::string("top level") : tl_path) + ": " + what);
}

const json& need(const json& j, const char* key) {
    if (!j.is_object()) bad("expected an object");
    const auto it = j.find(key);
    if (it == j.end()) bad(std::string("missing field '") + key + "'");
    return *it;
}

template <class T>
T read(const json& v);

template <>
double read<double>(const json& v) {
    if (!v.is_number()) bad("expected a number");
    return v.get<double>();
}
template <>
int64_t read<int64_t>(const json& v) {
    if (!v.is_number_integer()) bad("expected an integer");
    return v.get<int64_t>();
}
template <>
int read<int>(const json& v) {
    const int64_t x = read<int64_t>(v);
    if (x < INT32_MIN || x > INT32_MAX) bad("integer out of range");
    return static_cast<int>(x);
}
template <>
bool read<bool>(const json& v) {
    if (!v.is_boolean()) bad("expected true or false");
    return v.get<bool>();
}
template <>
std::string read<std::string>(const json& v) {
    if (!v.is_string()) bad("expected a string");
    return v.get<std::string>();
}

// A required field, read with its path in the message.
template <class T>
void field(const json& j, const char* key, T& out) {
    const json& v = need(j, key);
    PathScope s(std::string(tl_path.empty() ? "" : ".") + key);
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, int64_t> || std::is_same_v<T, int> ||
                  std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
        out = read<T>(v);
    } else {
        from_json(v, out);
    }
}

// An optional field: left as it is when absent.
template <class T>
void optional_field(const json& j, const char* key, T& out) {
    if (!j.is_object()) bad("expected an object");
    if (j.contains(key)) field(j, key, out);
}

template <class T>
void read_array(const json& v, std::vector<T>& out) {
    if (!v.is_array()) bad("expected an array");
    out.clear();
    out.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        PathScope s("[" + std::to_string(i) + "]");
        if constexpr (std::is_same_v<T, std::string>) out[i] = read<std::string>(v[i]);
        else from_json(v[i], out[i]);
    }
}

void check_format(const json& j, const char* format) {
    if (!j.is_object()) bad("expected an object");
    if (j.contains("format")) {
        std::string f;
        field(j, "format", f);
        if (f != format) bad("format is '" + f + "', expected '" + format + "'");
    }
    if (j.contains("version")) {
        int v = 0;
        field(j, "version", v);
        if (v != 1) bad("version " + std::to_string(v) + " is not supported (this build reads version 1)");
    }
}

}  // namespace

void from_json(const json& j, std::vector<std::string>& v) { read_array(j, v); }
void from_json(const json& j, std::vector<std::vector<std::string>>& v) { read_array(j, v); }
void from_json(const json& j, std::vector<AllocCandidate>& v) { read_array(j, v); }
void from_json(const json& j, std::vector<AllocLayer>& v) { read_array(j, v); }
void from_json(const json& j, std::vector<LayerChoice>& v) { read_array(j, v); }

void to_json(json& j, const AllocCandidate& c) {
    j = {{"spec", c.spec}, {"bits_per_weight", c.bits_per_weight}, {"extra_bits", c.extra_bits}, {"cost", c.cost}};
    if (!c.shared_key.empty()) j["shared_key"] = c.shared_key, j["shared_bits"] = c.shared_bits;
}
void from_json(const json& j, AllocCandidate& c) {
    c = {};
    field(j, "spec", c.spec);
    field(j, "bits_per_weight", c.bits_per_weight);
    optional_field(j, "extra_bits", c.extra_bits);
    field(j, "cost", c.cost);
    optional_field(j, "shared_key", c.shared_key);
    optional_field(j, "shared_bits", c.shared_bits);
}

void to_json(json& j, const AllocLayer& l) {
    j = {{"name", l.name}, {"kind", l.kind}, {"block", l.block}, {"weights", l.weights}, {"candidates", l.candidates}};
}
void from_json(const json& j, AllocLayer& l) {
    l = {};
    field(j, "name", l.name);
    optional_field(j, "kind", l.kind);
    optional_field(j, "block", l.block);
    field(j, "weights", l.weights);
    optional_field(j, "candidates", l.candidates);
}

void to_json(json& j, const BitsRange& r) {
    j = {{"min_bits_per_weight", r.min_bits_per_weight}};
    if (std::isfinite(r.max_bits_per_weight)) j["max_bits_per_weight"] = r.max_bits_per_weight;
}
void from_json(const json& j, BitsRange& r) {
    r = {};
    optional_field(j, "min_bits_per_weight", r.min_bits_per_weight);
    if (j.contains("max_bits_per_weight") && !j["max_bits_per_weight"].is_null())
        field(j, "max_bits_per_weight", r.max_bits_per_weight);
}

void to_json(json& j, const AllocConstraints& c) {
    json limits = json::object();
    for (const auto& [name, r] : c.layer_limits) limits[name] = r;
    j = {{"pins", c.pins},
         {"limits", c.limits},
         {"layer_limits", limits},
         {"tied", c.tied},
         {"excluded_kinds", c.excluded_kinds},
         {"excluded_bits_per_weight", c.excluded_bits_per_weight}};
}
void from_json(const json& j, AllocConstraints& c) {
    c = {};
    if (!j.is_object()) bad("expected an object");
    if (j.contains("pins")) {
        PathScope s(".pins");
        const json& p = j["pins"];
        if (!p.is_object()) bad("expected an object of layer: spec");
        for (auto it = p.begin(); it != p.end(); ++it) {
            PathScope k("." + it.key());
            c.pins[it.key()] = read<std::string>(it.value());
        }
    }
    optional_field(j, "limits", c.limits);
    if (j.contains("layer_limits")) {
        PathScope s(".layer_limits");
        const json& p = j["layer_limits"];
        if (!p.is_object()) bad("expected an object of layer: limits");
        for (auto it = p.begin(); it != p.end(); ++it) {
            PathScope k("." + it.key());
            from_json(it.value(), c.layer_limits[it.key()]);
        }
    }
    optional_field(j, "tied", c.tied);
    if (j.contains("excluded_kinds")) {
        std::vector<std::string> kinds;
        field(j, "excluded_kinds", kinds);
        c.excluded_kinds = {kinds.begin(), kinds.end()};
    }
    optional_field(j, "excluded_bits_per_weight", c.excluded_bits_per_weight);
}

void to_json(json& j, const AllocationSpec& s) { j = {{"layers", s.layers}, {"constraints", s.constraints}}; }
void from_json(const json& j, AllocationSpec& s) {
    s = {};
    field(j, "layers", s.layers);
    optional_field(j, "constraints", s.constraints);
}

void to_json(json& j, const Budget& b) {
    j = {{"unit", b.unit == Budget::Unit::Bytes ? "bytes" : "bits_per_weight"}, {"value", b.value}};
}
void from_json(const json& j, Budget& b) {
    std::string unit;
    field(j, "unit", unit);
    if (unit == "bits_per_weight") b.unit = Budget::Unit::BitsPerWeight;
    else if (unit == "bytes") b.unit = Budget::Unit::Bytes;
    else {
        PathScope s(".unit");
        bad("'" + unit + "' is not 'bits_per_weight' or 'bytes'");
    }
    field(j, "value", b.value);
}

void to_json(json& j, const LayerChoice& c) {
    j = {{"name", c.name},         {"spec", c.spec},
         {"candidate", c.candidate}, {"weights", c.weights},
         {"bits", c.bits},         {"bits_per_weight", c.bits_per_weight},
         {"cost", c.cost},         {"excluded", c.excluded},
         {"pinned", c.pinned},     {"tied_group", c.tied_group}};
}
void from_json(const json& j, LayerChoice& c) {
    c = {};
    field(j, "name", c.name);
    field(j, "spec", c.spec);
    field(j, "candidate", c.candidate);
    field(j, "weights", c.weights);
    field(j, "bits", c.bits);
    field(j, "bits_per_weight", c.bits_per_weight);
    field(j, "cost", c.cost);
    optional_field(j, "excluded", c.excluded);
    optional_field(j, "pinned", c.pinned);
    optional_field(j, "tied_group", c.tied_group);
}

void to_json(json& j, const Allocation& a) {
    j = {{"format", kAllocationFormat},
         {"version", 1},
         {"solver", a.solver},
         {"proven_optimal", a.proven_optimal},
         {"budget", a.budget},
         {"budget_bits", a.budget_bits},
         {"total_bits", a.total_bits},
         {"total_weights", a.total_weights},
         {"bits_per_weight", a.bits_per_weight},
         {"bytes", a.bytes},
         {"total_cost", a.total_cost},
         {"lower_bound", a.lower_bound},
         {"gap", a.gap},
         {"lambda", a.lambda},
         {"resolution_bits", a.resolution_bits},
         {"shared_bits", a.shared_bits},
         {"shared_keys", a.shared_keys},
         {"layers", a.layers}};
}
void from_json(const json& j, Allocation& a) {
    a = {};
    check_format(j, kAllocationFormat);
    field(j, "solver", a.solver);
    field(j, "proven_optimal", a.proven_optimal);
    field(j, "budget", a.budget);
    field(j, "budget_bits", a.budget_bits);
    field(j, "total_bits", a.total_bits);
    field(j, "total_weights", a.total_weights);
    field(j, "bits_per_weight", a.bits_per_weight);
    field(j, "bytes", a.bytes);
    field(j, "total_cost", a.total_cost);
    field(j, "lower_bound", a.lower_bound);
    field(j, "gap", a.gap);
    field(j, "lambda", a.lambda);
    optional_field(j, "resolution_bits", a.resolution_bits);
    optional_field(j, "shared_bits", a.shared_bits);
    optional_field(j, "shared_keys", a.shared_keys);
    field(j, "layers", a.layers);
}

json problem_to_json(const AllocationProblem& problem) {
    json j = problem.spec();
    j["format"] = kProblemFormat;
    j["version"] = 1;
    j["exact_steps"] = problem.options().exact_steps;
    return j;
}

AllocationProblem problem_from_json(const json& j) {
    tl_path.clear();
    check_format(j, kProblemFormat);
    AllocationSpec spec;
    from_json(j, spec);
    ProblemOptions options;
    optional_field(j, "exact_steps", options.exact_steps);
    return AllocationProblem(std::move(spec), options);
}

}  // namespace quench
