#include "qat/qat_schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/error.h"

namespace quench {
namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

double schedule_factor(const QatOptions& o, int64_t step, int64_t total) {
    const double t = static_cast<double>(step), n = static_cast<double>(total);
    const double warm = std::floor(o.warmup * n);
    if (t < warm) return (t + 1) / (warm + 1);
    const double lo = o.min_lr_ratio;
    if (o.schedule == QatSchedule::Cosine) {
        const double p = n - warm <= 1 ? 1.0 : (t - warm) / (n - warm - 1);
        return lo + (1 - lo) * 0.5 * (1 + std::cos(kPi * std::min(1.0, p)));
    }
    const double decay_start = n - std::floor(o.decay * n);
    if (t < decay_start) return 1.0;
    const double p = n - decay_start <= 1 ? 1.0 : (t - decay_start) / (n - decay_start - 1);
    return 1 - (1 - lo) * std::min(1.0, p);
}

int64_t parse_token_budget(const std::string& text, int64_t train_tokens) {
    auto number = [&](std::string s) -> double {
        double mult = 1;
        if (!s.empty()) {
            const char c = s.back();
            if (c == 'k' || c == 'K') mult = 1e3;
            if (c == 'M') mult = 1e6;
            if (c == 'B' || c == 'G') mult = 1e9;
            if (mult != 1) s.pop_back();
        }
        std::size_t used = 0;
        double v = 0;
        try {
            v = std::stod(s, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (s.empty() || used != s.size() || !(v >= 0))
            throw Error("--tokens '" + text + "': expected N, N with k/M/B, or P%@train / P%@SIZE");
        return v * mult;
    };
    const auto at = text.find('@');
    double tokens = 0;
    if (at == std::string::npos) {
        tokens = number(text);
    } else {
        std::string frac = text.substr(0, at);
        const std::string base = text.substr(at + 1);
        double f = 0;
        if (!frac.empty() && frac.back() == '%') {
            frac.pop_back();
            f = number(frac) / 100;
        } else {
            f = number(frac);
        }
        tokens = f * (base == "train" ? static_cast<double>(train_tokens) : number(base));
    }
    if (tokens < 1) throw Error("--tokens '" + text + "': the budget is less than one token");
    return static_cast<int64_t>(std::llround(tokens));
}

}  // namespace quench
