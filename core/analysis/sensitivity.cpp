#include "analysis/sensitivity.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "analysis/layer_capture.h"
#include "analysis/layer_metrics.h"
#include "analysis/model_eval.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/json_file.h"
#include "jobs/progress.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/model_quantizer.h"

namespace quench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

uint64_t token_hash(const std::vector<int32_t>& t) {
    uint64_t h = kFnv1aOffset;
    for (int32_t v : t) {
        const auto u = static_cast<uint32_t>(v);  // little-endian bytes on every platform
        const uint8_t bytes[4] = {uint8_t(u), uint8_t(u >> 8), uint8_t(u >> 16), uint8_t(u >> 24)};
        h = fnv1a(h, bytes, 4);
    }
    return h;
}

// Puts the layer's original weight back however the scope is left.
struct RestoreGuard {
    LlamaModel& model;
    std::size_t layer;
    ~RestoreGuard() { model.restore_weight(layer); }
};

std::string describe(const SensitivitySettings& s) {
    return "calib_tokens=" + std::to_string(s.calib_tokens) + " kl_tokens=" + std::to_string(s.kl_tokens) +
           " ctx=" + std::to_string(s.ctx) + " sample_rows=" + std::to_string(s.sample_rows) +
           " seed=" + std::to_string(s.seed);
}

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

std::vector<std::string> parse_candidate_list(const std::string& list) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t end = list.find(';', start);
        if (end == std::string::npos) end = list.size();
        std::string item = list.substr(start, end - start);
        const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
        item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
        if (!item.empty()) {
            const std::string canon = CodecSpec::parse(item).to_string();
            if (std::find(out.begin(), out.end(), canon) == out.end()) out.push_back(canon);
        }
        start = end + 1;
    }
    if (out.empty()) throw Error("candidates: no codec spec in '" + list + "'");
    return out;
}

SensitivityStats measure_sensitivity(LlamaModel& model, const std::vector<std::size_t>& layers,
                                     const std::vector<std::string>& candidates,
                                     const std::vector<int32_t>& calib_tokens, const std::vector<int32_t>& kl_tokens,
                                     int32_t bos_id, const SensitivityOptions& options, Measurements& m,
                                     ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    using Clock = std::chrono::steady_clock;
    const auto t_start = Clock::now();
    SensitivityStats stats;
    if (calib_tokens.empty()) throw Error("sensitivity: calibration tokens: none given");
    if (kl_tokens.size() < 2) throw Error("sensitivity: KL tokens: need at least 2");
    if (candidates.empty()) throw Error("sensitivity: candidates: none given");
    for (std::size_t l : layers) {
        if (l >= model.layers().size()) throw Error("sensitivity: layer index " + std::to_string(l) + " out of range");
        if (model.is_replaced(l))
            throw Error("sensitivity: layer '" + model.layers().at(l).name + "': weight already replaced");
    }

    SensitivitySettings settings;
    settings.model = model.dir();
    settings.calib_tokens = static_cast<int64_t>(calib_tokens.size());
    settings.calib_hash = token_hash(calib_tokens);
    settings.kl_tokens = static_cast<int64_t>(kl_tokens.size());
    settings.kl_hash = token_hash(kl_tokens);
    settings.ctx = options.ctx > 0 ? options.ctx : std::min<int64_t>(model.config().max_position_embeddings, 512);
    settings.sample_rows = options.sample_rows;
    settings.seed = options.seed;
    if (m.has_settings() && !(m.settings() == settings))
        throw Error("sensitivity: measurements were taken with " + describe(m.settings()) + ", this run uses " +
                    describe(settings) + " (or other tokens); use a new measurements file");
    if (!m.has_settings()) m.set_settings(settings);

    std::vector<std::unique_ptr<Codec>> codecs;
    for (const auto& c : candidates) codecs.push_back(make_codec(c));
    std::vector<std::string> canon;
    for (const auto& c : codecs) canon.push_back(c->spec().to_string());

    // Plan: per layer, which candidates to quantize and which of those need a KL measurement.
    struct Work {
        std::size_t layer;
        std::vector<std::size_t> todo;  // candidate indices
        std::vector<bool> need_kl;
        bool hessian = false;
    };
    std::vector<Work> plan;
    for (std::size_t l : layers) {
        const auto& info = model.layers().at(l);
        m.add_layer({info.name, layer_kind_name(info.kind), info.block, info.out_features, info.in_features, -1, false});
        // Bits estimate (cheap) for each available candidate; unsupported shapes are recorded unavailable.
        std::vector<std::pair<double, std::size_t>> by_bits;
        for (std::size_t c = 0; c < codecs.size(); ++c) {
            const SensitivityPoint* have = m.find(info.name, canon[c]);
            if (have && !have->available) continue;
            try {
                by_bits.push_back({codecs[c]->estimate_bits(info.out_features, info.in_features).total_bits_per_weight, c});
            } catch (const Cancelled&) {
                throw;
            } catch (const Error& e) {
                SensitivityPoint p;
                p.layer = info.name;
                p.spec = canon[c];
                p.available = false;
                p.error = e.what();
                m.set(p);
                ++stats.unavailable;
            }
        }
        std::stable_sort(by_bits.begin(), by_bits.end());
        std::set<std::size_t> reference;  // candidates whose KL proxy mode measures
        if (!by_bits.empty()) {
            reference.insert(by_bits[(by_bits.size() - 1) / 2].second);
            if (options.proxy_points >= 2) reference.insert(by_bits.front().second);
        }
        Work w{l, {}, {}, false};
        for (const auto& [bits, c] : by_bits) {
            const SensitivityPoint* have = m.find(info.name, canon[c]);
            const bool want_kl = !options.proxy || reference.count(c);
            if (have && (have->has_kl || !want_kl)) {
                ++stats.reused;
                continue;
            }
            w.todo.push_back(c);
            w.need_kl.push_back(want_kl);
            w.hessian = w.hessian || codecs[c]->needs_hessian();
        }
        if (!w.todo.empty()) plan.push_back(std::move(w));
    }
    std::size_t total_units = 0, done_units = 0;
    for (const auto& w : plan) total_units += w.todo.size();

    EvalOptions eo;
    eo.ctx = settings.ctx;
    eo.batch = options.kl_batch;
    std::size_t i = 0;
    while (i < plan.size()) {
        prog.check();
        std::size_t j = i;
        int64_t bytes = 0;
        bool hessian = false;
        while (j < plan.size()) {
            const int64_t cols = model.layers().at(plan[j].layer).in_features;
            const int64_t b = plan[j].hessian ? cols * cols * 4 : 0;
            if (j > i && bytes + b > options.max_stats_bytes) break;
            bytes += b;
            hessian = hessian || plan[j].hessian;
            ++j;
        }
        std::vector<std::size_t> chunk;
        for (std::size_t k = i; k < j; ++k) chunk.push_back(plan[k].layer);
        CaptureOptions co;
        co.ctx = settings.ctx;
        co.hessian = hessian;
        co.sample_rows = options.sample_rows;
        const double f0 = total_units ? double(done_units) / double(total_units) : 0.0;
        SubProgress cap(prog, f0, f0);
        auto captured = capture_layer_inputs(model, chunk, calib_tokens, co, &cap);
        ++stats.capture_passes;
        for (std::size_t k = i; k < j; ++k) {
            const auto& w = plan[k];
            const auto& info = model.layers().at(w.layer);
            const auto& st = captured.at(w.layer);
            CalibStats calib;
            if (st.xtx.defined()) calib.hessian = st.hessian();
            calib.act_scale = st.abs_mean;
            for (std::size_t t = 0; t < w.todo.size(); ++t) {
                prog.check();
                const std::size_t c = w.todo[t];
                const double fa = double(done_units) / double(total_units), fb = double(done_units + 1) / double(total_units);
                prog.report(fa, "sensitivity " + info.name + " " + canon[c]);
                const auto t0 = Clock::now();
                SensitivityPoint p;
                p.layer = info.name;
                p.spec = canon[c];
                QuantizeContext ctx{&calib, layer_seed(options.seed, info.name), nullptr};
                at::Tensor wq;
                QuantizedTensor q;
                try {
                    ++stats.quantize_calls;
                    q = codecs[c]->quantize(model.original_weight(w.layer), ctx);
                    wq = codecs[c]->dequantize(q);
                } catch (const Cancelled&) {
                    throw;
                } catch (const Error& e) {
                    p.available = false;
                    p.error = e.what();
                    m.set(p);
                    ++stats.unavailable;
                    ++done_units;
                    continue;
                }
                const LayerMetrics lm = compare_weights(model.original_weight(w.layer), wq, st.sample);
                p.output_rel_error = lm.output_rel_error;
                p.bits_per_weight = q.total_bits_per_weight();
                p.code_bits_per_weight = q.code_bits_per_weight();
                if (w.need_kl[t]) {
                    model.replace_weight(w.layer, wq);
                    RestoreGuard guard{model, w.layer};
                    SubProgress sub(prog, fa, fb);
                    const KlReport kl = evaluate_kl({&model, LlamaModel::Weights::Original}, {&model}, kl_tokens, eo,
                                                    bos_id, &sub);
                    ++stats.kl_evals;
                    p.has_kl = true;
                    p.kl = kl.kl_mean;
                    p.kl_stderr = kl.kl_stderr;
                } else if (const SensitivityPoint* have = m.find(info.name, canon[c]); have && have->has_kl) {
                    p.has_kl = true, p.kl = have->kl, p.kl_stderr = have->kl_stderr;
                }
                p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
                m.set(p);
                ++done_units;
            }
        }
        i = j;
    }
    m.fit_proxy();
    prog.report(1.0, "sensitivity done");
    stats.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
    return stats;
}

const char* cost_source_name(CostSource s) {
    switch (s) {
        case CostSource::Kl: return "kl";
        case CostSource::Proxy: return "proxy";
        case CostSource::Auto: return "auto";
    }
    return "?";
}

CostSource cost_source_from_name(const std::string& s) {
    if (s == "kl") return CostSource::Kl;
    if (s == "proxy") return CostSource::Proxy;
    if (s == "auto") return CostSource::Auto;
    throw Error("cost: '" + s + "' is not one of kl, proxy, auto");
}

AllocationSpec to_allocation_spec(const Measurements& m, CostSource source) {
    AllocationSpec spec;
    std::vector<std::string> empty;
    for (const auto& l : m.layers()) {
        AllocLayer al;
        al.name = l.name;
        al.kind = l.kind;
        al.block = l.block;
        al.weights = l.weights();
        for (const auto* p : m.points_of(l.name)) {
            if (!p->available) continue;
            double cost;
            if (source == CostSource::Kl || (source == CostSource::Auto && p->has_kl)) {
                if (!p->has_kl) continue;
                cost = p->kl;
            } else {
                if (p->proxy_kl < 0) continue;
                cost = p->proxy_kl;
            }
            AllocCandidate c{p->spec, p->bits_per_weight, 0.0, cost};
            // A part every layer with this setting shares is paid once by the allocator, not by each layer.
            const int64_t shared = make_codec(p->spec)->estimate_bits(l.out_features, l.in_features).shared_bits;
            if (shared > 0) {
                c.shared_key = p->spec;
                c.shared_bits = shared;
                c.bits_per_weight = std::max(0.0, p->bits_per_weight - double(shared) / double(l.weights()));
            }
            al.candidates.push_back(std::move(c));
        }
        if (al.candidates.empty()) empty.push_back(l.name);
        spec.layers.push_back(std::move(al));
    }
    if (!empty.empty()) {
        std::string names;
        for (const auto& n : empty) names += (names.empty() ? "'" : ", '") + n + "'";
        throw Error(std::string("measurements: no available candidate with a ") + cost_source_name(source) +
                    " cost for layer" + (empty.size() > 1 ? "s " : " ") + names);
    }
    if (spec.layers.empty()) throw Error("measurements: no layers");
    return spec;
}

// ---- JSON ----

namespace {

struct Reader {
    const std::string& source;
    [[noreturn]] void fail(const std::string& path, const std::string& what) const {
        throw Error(source + ": " + path + ": " + what);
    }
    const nlohmann::json& field(const nlohmann::json& j, const std::string& path, const char* key) const {
        if (!j.is_object()) fail(path, "expected an object");
        auto it = j.find(key);
        if (it == j.end()) fail(path + "." + key, "missing");
        return *it;
    }
    double num(const nlohmann::json& j, const std::string& path, const char* key) const {
        const auto& v = field(j, path, key);
        if (!v.is_number()) fail(path + "." + key, "expected a number");
        return v.get<double>();
    }
    double num_or(const nlohmann::json& j, const std::string& path, const char* key, double dflt) const {
        if (!j.contains(key)) return dflt;
        return num(j, path, key);
    }
    int64_t integer(const nlohmann::json& j, const std::string& path, const char* key) const {
        const auto& v = field(j, path, key);
        if (!v.is_number_integer()) fail(path + "." + key, "expected an integer");
        return v.get<int64_t>();
    }
    uint64_t hash(const nlohmann::json& j, const std::string& path, const char* key) const {
        const auto& v = field(j, path, key);
        if (!v.is_string()) fail(path + "." + key, "expected a hex string");
        try {
            std::size_t n = 0;
            const uint64_t h = std::stoull(v.get<std::string>(), &n, 16);
            if (n != v.get<std::string>().size()) throw std::invalid_argument("x");
            return h;
        } catch (const std::exception&) {
            fail(path + "." + key, "expected a hex string");
        }
    }
    std::string str(const nlohmann::json& j, const std::string& path, const char* key) const {
        const auto& v = field(j, path, key);
        if (!v.is_string()) fail(path + "." + key, "expected a string");
        return v.get<std::string>();
    }
    bool boolean(const nlohmann::json& j, const std::string& path, const char* key) const {
        const auto& v = field(j, path, key);
        if (!v.is_boolean()) fail(path + "." + key, "expected true or false");
        return v.get<bool>();
    }
};


}  // namespace

nlohmann::json Measurements::to_json() const {
    nlohmann::json j;
    j["format"] = "quench.sensitivity";
    j["version"] = 1;
    const auto& s = settings_;
    j["settings"] = {{"model", s.model},   {"calib_tokens", s.calib_tokens}, {"calib_hash", hex64(s.calib_hash)},
                     {"kl_tokens", s.kl_tokens}, {"kl_hash", hex64(s.kl_hash)}, {"ctx", s.ctx},
                     {"sample_rows", s.sample_rows}, {"seed", s.seed}};
    if (!settings_set_) j.erase("settings");
    j["proxy"] = {{"points", proxy_points_}};
    if (std::isfinite(proxy_spearman_)) j["proxy"]["spearman"] = proxy_spearman_;
    j["layers"] = nlohmann::json::array();
    for (const auto& l : layers_) {
        nlohmann::json jl = {{"name", l.name},           {"kind", l.kind},
                             {"block", l.block},         {"out_features", l.out_features},
                             {"in_features", l.in_features}, {"points", nlohmann::json::array()}};
        for (const auto* p : points_of(l.name)) {
            nlohmann::json jp = {{"spec", p->spec}, {"available", p->available}};
            if (!p->available) {
                jp["error"] = p->error;
            } else {
                jp["bits_per_weight"] = p->bits_per_weight;
                jp["code_bits_per_weight"] = p->code_bits_per_weight;
                jp["output_rel_error"] = p->output_rel_error;
                if (p->has_kl) jp["kl"] = p->kl, jp["kl_stderr"] = p->kl_stderr;
                jp["seconds"] = p->seconds;
            }
            jl["points"].push_back(std::move(jp));
        }
        j["layers"].push_back(std::move(jl));
    }
    return j;
}

Measurements Measurements::from_json(const nlohmann::json& j, const std::string& source) {
    Reader r{source};
    if (!j.is_object()) r.fail("(top)", "expected an object");
    if (r.str(j, "(top)", "format") != "quench.sensitivity") r.fail("format", "expected \"quench.sensitivity\"");
    if (r.integer(j, "(top)", "version") != 1) r.fail("version", "unsupported (expected 1)");
    Measurements m;
    if (j.contains("settings")) {
        const auto& js = j["settings"];
        SensitivitySettings s;
        s.model = r.str(js, "settings", "model");
        s.calib_tokens = r.integer(js, "settings", "calib_tokens");
        s.calib_hash = r.hash(js, "settings", "calib_hash");
        s.kl_tokens = r.integer(js, "settings", "kl_tokens");
        s.kl_hash = r.hash(js, "settings", "kl_hash");
        s.ctx = r.integer(js, "settings", "ctx");
        s.sample_rows = r.integer(js, "settings", "sample_rows");
        s.seed = static_cast<uint64_t>(r.integer(js, "settings", "seed"));
        m.set_settings(s);
    }
    const auto& jl = r.field(j, "(top)", "layers");
    if (!jl.is_array()) r.fail("layers", "expected an array");
    for (std::size_t i = 0; i < jl.size(); ++i) {
        const std::string lp = "layers[" + std::to_string(i) + "]";
        SensitivityLayer l;
        l.name = r.str(jl[i], lp, "name");
        l.kind = r.str(jl[i], lp, "kind");
        l.block = static_cast<int>(r.integer(jl[i], lp, "block"));
        l.out_features = r.integer(jl[i], lp, "out_features");
        l.in_features = r.integer(jl[i], lp, "in_features");
        if (l.out_features <= 0 || l.in_features <= 0) r.fail(lp + ".out_features", "expected a positive shape");
        if (m.layer(l.name)) r.fail(lp + ".name", "duplicate layer '" + l.name + "'");
        m.add_layer(l);
        const auto& pts = r.field(jl[i], lp, "points");
        if (!pts.is_array()) r.fail(lp + ".points", "expected an array");
        for (std::size_t k = 0; k < pts.size(); ++k) {
            const std::string pp = lp + ".points[" + std::to_string(k) + "]";
            SensitivityPoint p;
            p.layer = l.name;
            p.spec = r.str(pts[k], pp, "spec");
            try {
                if (CodecSpec::parse(p.spec).to_string() != p.spec) r.fail(pp + ".spec", "not in canonical form");
            } catch (const Cancelled&) {
                throw;
            } catch (const Error& e) {
                if (std::string(e.what()).rfind(source, 0) == 0) throw;
                r.fail(pp + ".spec", e.what());
            }
            if (m.find(l.name, p.spec)) r.fail(pp + ".spec", "duplicate '" + p.spec + "'");
            p.available = r.boolean(pts[k], pp, "available");
            if (!p.available) {
                p.error = r.str(pts[k], pp, "error");
            } else {
                p.bits_per_weight = r.num(pts[k], pp, "bits_per_weight");
                p.code_bits_per_weight = r.num(pts[k], pp, "code_bits_per_weight");
                p.output_rel_error = r.num(pts[k], pp, "output_rel_error");
                if (pts[k].contains("kl")) {
                    p.has_kl = true;
                    p.kl = r.num(pts[k], pp, "kl");
                    p.kl_stderr = r.num_or(pts[k], pp, "kl_stderr", 0);
                }
                p.seconds = r.num_or(pts[k], pp, "seconds", 0);
                if (!(p.bits_per_weight > 0)) r.fail(pp + ".bits_per_weight", "expected a positive number");
            }
            m.set(p);
        }
    }
    m.fit_proxy();
    return m;
}

void Measurements::save(const std::string& path) const { write_file_atomic(path, to_json().dump(1) + "\n"); }

Measurements Measurements::load(const std::string& path) { return from_json(read_json_file(path), path); }

}  // namespace quench
