#pragma once
// Message pieces shared by the allocation sources, so every error reads "allocation: layer 'x' ...".
// Internal to core/alloc.
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "alloc/allocation_spec.h"
#include "common/error.h"

namespace quench::alloc_text {

[[noreturn]] inline void fail(const std::string& msg) { throw Error("allocation: " + msg); }

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Six significant digits: enough to tell 2.37 from 2.375, short enough for one line.
inline std::string num(double v) {
    std::ostringstream o;
    o.precision(6);
    o << v;
    return o.str();
}

inline std::string range_text(const BitsRange& r) {
    return "[" + num(r.min_bits_per_weight) + ", " +
           (std::isinf(r.max_bits_per_weight) ? std::string("inf") : num(r.max_bits_per_weight)) + "] bits per weight";
}

// "['a', 'b', 'c']", or the first three and a count for big groups.
inline std::string group_text(const std::vector<std::string>& names) {
    std::string s = "[";
    for (size_t i = 0; i < names.size() && i < 3; ++i) s += (i ? ", " : "") + quoted(names[i]);
    if (names.size() > 3) s += ", ... (" + std::to_string(names.size()) + " layers)";
    return s + "]";
}

}  // namespace quench::alloc_text
