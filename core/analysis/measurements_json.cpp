// Measurements as JSON (format "quench.sensitivity", version 1): what `quench-cli sensitivity --out` writes
// and `allocate` reads. Every field is checked on reading; an error names the file and the field's path.
#include "analysis/measurements.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/json_file.h"
#include "quant/codec_spec.h"

namespace quench {

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
