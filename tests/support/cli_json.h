#pragma once
// The JSON a quench-cli run printed with --json, for the tests that read its numbers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/cli.h"

namespace quench::test {

// The parsed stdout of a run that must succeed; a failed run is a test failure showing its stderr, and its
// output (no JSON) throws, which ends the test.
inline nlohmann::json json_of(const CliResult& r) {
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
}

}  // namespace quench::test
