#pragma once
// Error-message helper shared by the tests that check what quench::Error says.
#include <functional>
#include <string>

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

}  // namespace quench::test
