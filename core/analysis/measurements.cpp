#include "analysis/measurements.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "common/error.h"

namespace quench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

bool SensitivitySettings::operator==(const SensitivitySettings& o) const {
    return calib_tokens == o.calib_tokens && calib_hash == o.calib_hash && kl_tokens == o.kl_tokens &&
           kl_hash == o.kl_hash && ctx == o.ctx && sample_rows == o.sample_rows && seed == o.seed;
}

Measurements::Measurements() : proxy_spearman_(kNaN) {}

const SensitivityPoint* Measurements::find(const std::string& layer, const std::string& spec) const {
    auto it = index_.find({layer, spec});
    return it == index_.end() ? nullptr : &points_[it->second];
}

void Measurements::set(SensitivityPoint p) {
    if (!layer_index_.count(p.layer)) throw Error("measurements: point for unknown layer '" + p.layer + "'");
    const auto key = std::make_pair(p.layer, p.spec);
    if (auto it = index_.find(key); it != index_.end()) {
        points_[it->second] = std::move(p);
        return;
    }
    index_[key] = points_.size();
    points_.push_back(std::move(p));
}

void Measurements::add_layer(const SensitivityLayer& l) {
    if (auto it = layer_index_.find(l.name); it != layer_index_.end()) {
        const auto& have = layers_[it->second];
        if (have.out_features != l.out_features || have.in_features != l.in_features)
            throw Error("measurements: layer '" + l.name + "': shape [" + std::to_string(have.out_features) + ", " +
                        std::to_string(have.in_features) + "] recorded, the model has [" +
                        std::to_string(l.out_features) + ", " + std::to_string(l.in_features) + "]");
        return;
    }
    layer_index_[l.name] = layers_.size();
    layers_.push_back(l);
}

const SensitivityLayer* Measurements::layer(const std::string& name) const {
    auto it = layer_index_.find(name);
    return it == layer_index_.end() ? nullptr : &layers_[it->second];
}

std::vector<const SensitivityPoint*> Measurements::points_of(const std::string& layer) const {
    std::vector<const SensitivityPoint*> out;
    for (const auto& p : points_)
        if (p.layer == layer) out.push_back(&p);
    return out;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
    const std::size_t n = a.size();
    if (n < 2 || b.size() != n) return kNaN;
    auto ranks = [n](const std::vector<double>& v) {
        std::vector<std::size_t> order(n);
        for (std::size_t i = 0; i < n; ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return v[x] < v[y]; });
        std::vector<double> r(n);
        for (std::size_t i = 0; i < n;) {
            std::size_t j = i;
            while (j + 1 < n && v[order[j + 1]] == v[order[i]]) ++j;
            for (std::size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j);  // average rank
            i = j + 1;
        }
        return r;
    };
    const auto ra = ranks(a), rb = ranks(b);
    double ma = 0, mb = 0;
    for (std::size_t i = 0; i < n; ++i) ma += ra[i], mb += rb[i];
    ma /= double(n), mb /= double(n);
    double sab = 0, saa = 0, sbb = 0;
    for (std::size_t i = 0; i < n; ++i) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    if (saa == 0 || sbb == 0) return kNaN;
    return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

void Measurements::fit_proxy() {
    // Per layer: log-ratios log(KL / output error) of the measured points with both positive.
    std::map<std::string, std::vector<std::size_t>> usable;
    for (std::size_t i = 0; i < points_.size(); ++i) {
        const auto& p = points_[i];
        if (p.available && p.has_kl && p.kl > 0 && p.output_rel_error > 0) usable[p.layer].push_back(i);
    }
    auto log_ratio = [this](std::size_t i) { return std::log(points_[i].kl / points_[i].output_rel_error); };
    double global_sum = 0;
    int global_n = 0;
    for (auto& l : layers_) {
        auto it = usable.find(l.name);
        l.proxy_factor = -1;
        l.proxy_factor_global = false;
        if (it == usable.end()) continue;
        double s = 0;
        for (std::size_t i : it->second) s += log_ratio(i);
        s /= double(it->second.size());
        l.proxy_factor = std::exp(s);
        global_sum += s;
        ++global_n;
    }
    for (auto& l : layers_)
        if (l.proxy_factor < 0 && global_n > 0) {
            l.proxy_factor = std::exp(global_sum / global_n);
            l.proxy_factor_global = true;
        }
    for (auto& p : points_) {
        const auto& l = layers_[layer_index_.at(p.layer)];
        p.proxy_kl = (p.available && p.output_rel_error >= 0 && l.proxy_factor >= 0) ? p.output_rel_error * l.proxy_factor
                                                                                      : -1;
    }
    // Held out: each usable point of a layer with >= 2 against the factor of the layer's other usable points.
    std::vector<double> truth, pred;
    for (const auto& [name, idx] : usable) {
        if (idx.size() < 2) continue;
        double total = 0;
        for (std::size_t i : idx) total += log_ratio(i);
        for (std::size_t i : idx) {
            const double f = std::exp((total - log_ratio(i)) / double(idx.size() - 1));
            truth.push_back(points_[i].kl);
            pred.push_back(points_[i].output_rel_error * f);
        }
    }
    proxy_points_ = static_cast<int64_t>(truth.size());
    proxy_spearman_ = truth.size() >= 3 ? spearman(pred, truth) : kNaN;
}

}  // namespace quench
