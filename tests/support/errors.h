#pragma once
// Error-message helpers shared by the tests that check what quench::Error says.
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"

namespace quench::test {

// The message of the quench::Error that fn throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const quench::Error& e) {
        return e.what();
    }
    return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Whether msg holds every one of parts.
inline bool contains_all(const std::string& msg, const std::vector<std::string>& parts) {
    for (const auto& p : parts)
        if (!contains(msg, p)) return false;
    return true;
}

}  // namespace quench::test
