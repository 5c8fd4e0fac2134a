#pragma once
// Terminal output helpers shared by the subcommands: aligned tables and throttled progress on stderr.
#include <chrono>
#include <string>
#include <vector>

#include "common/progress.h"

namespace quench::cli {

class Table {
public:
    explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    std::string render() const;  // columns padded; cells that are a single number right-aligned

private:
    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
};

// Progress on stderr, at most a few lines per second; silent when quiet.
class StderrProgress : public ProgressSink {
public:
    explicit StderrProgress(bool quiet) : quiet_(quiet) {}
    ~StderrProgress() override;
    void report(double fraction, const std::string& stage) override;

private:
    bool quiet_;
    bool printed_ = false;
    std::chrono::steady_clock::time_point start_{}, last_{};
};

std::string fmt_num(double v, int precision = 4);  // fixed notation, trimmed
std::string fmt_duration(double seconds);          // "42s", "3m 05s", "2h 10m"
std::string fmt_shape(int64_t rows, int64_t cols);
std::string fmt_bytes(double bytes);

}  // namespace quench::cli
