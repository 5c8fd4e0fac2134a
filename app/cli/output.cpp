#include "output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace quench::cli {

std::string Table::render() const {
    std::vector<std::size_t> width(header_.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
    };
    measure(header_);
    for (const auto& r : rows_) measure(r);
    auto numeric = [](const std::string& s) {  // whole cell is one number
        char* end = nullptr;
        std::strtod(s.c_str(), &end);
        return !s.empty() && end == s.c_str() + s.size();
    };
    // A column of numbers (and "-" gaps) is right-aligned; a number among text (a key-value table's seed
    // next to a long command line) stays left-aligned with its neighbours.
    std::vector<bool> right(width.size(), true);
    for (const auto& r : rows_)
        for (std::size_t i = 0; i < r.size() && i < right.size(); ++i)
            if (!r[i].empty() && r[i] != "-" && !numeric(r[i])) right[i] = false;
    std::string out;
    auto line = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < width.size(); ++i) {
            const std::string cell = i < row.size() ? row[i] : "";
            const std::string pad(width[i] - cell.size(), ' ');
            out += (i ? "  " : "") + (right[i] && numeric(cell) ? pad + cell : cell + pad);
        }
        while (!out.empty() && out.back() == ' ') out.pop_back();
        out += '\n';
    };
    line(header_);
    std::vector<std::string> rule;
    for (auto w : width) rule.emplace_back(w, '-');
    line(rule);
    for (const auto& r : rows_) line(r);
    return out;
}

StderrProgress::~StderrProgress() {
    if (printed_ && isatty(STDERR_FILENO)) std::fputc('\n', stderr);
}

void StderrProgress::report(double fraction, const std::string& stage) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    if (start_ == std::chrono::steady_clock::time_point{}) start_ = now;
    if (isatty(STDERR_FILENO)) {
        if (fraction < 1.0 && printed_ && now - last_ < std::chrono::milliseconds(100)) return;
    } else if (now - start_ < std::chrono::seconds(2) || now - last_ < std::chrono::seconds(5)) {
        return;  // logs get a line every few seconds, and quick jobs none at all
    }
    last_ = now;
    printed_ = true;
    // Time left extrapolated from the time so far, once there is enough of both to go by (the jobs report
    // fractions of work, block by block, not of steps).
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    std::string eta;
    if (fraction >= 0.02 && fraction < 1.0 && elapsed >= 10) eta = "  ETA " + fmt_duration(elapsed * (1 - fraction) / fraction);
    if (isatty(STDERR_FILENO))
        std::fprintf(stderr, "\r%-40s %5.1f%%%-14s", stage.c_str(), 100.0 * fraction, eta.c_str());
    else
        std::fprintf(stderr, "%s %.1f%%%s\n", stage.c_str(), 100.0 * fraction, eta.c_str());
    std::fflush(stderr);
}

std::string fmt_duration(double seconds) {
    const auto s = static_cast<int64_t>(seconds + 0.5);
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
    return fmt::format("{}h {:02}m", s / 3600, (s % 3600) / 60);
}

std::string fmt_num(double v, int precision) { return fmt::format("{:.{}f}", v, precision); }
std::string fmt_shape(int64_t rows, int64_t cols) { return fmt::format("{} x {}", rows, cols); }

std::string fmt_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    return fmt::format("{:.{}f} {}", b, u == 0 ? 0 : 2, units[u]);
}

}  // namespace quench::cli
