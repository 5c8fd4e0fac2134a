#pragma once
// Runs the built quench-cli with arguments and captures its exit code, stdout, stderr and peak memory.
#include <string>

namespace quench::test {

struct CliResult {
    int code;  // exit status; -1 when the process did not exit normally
    std::string out, err;
    long peak_rss_kb = 0;  // the child's peak resident set (getrusage's ru_maxrss of the waited process tree)
};

CliResult run_cli(const std::string& args);

}  // namespace quench::test
