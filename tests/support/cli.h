#pragma once
// Runs the built quench-cli with arguments and captures its exit code, stdout and stderr.
#include <string>

namespace quench::test {

struct CliResult {
    int code;  // exit status; -1 when the process did not exit normally
    std::string out, err;
};

CliResult run_cli(const std::string& args);

}  // namespace quench::test
