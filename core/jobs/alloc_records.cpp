#include "jobs/alloc_records.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "alloc/allocation.h"
#include "alloc/allocation_json.h"
#include "jobs/sensitivity.h"
#include "common/error.h"
#include "common/hash.h"

namespace quench {
namespace {

// Attribute readers naming the table and attribute on a missing or mistyped value.
const AttrValue& attr(const Table& t, const std::string& name) {
    const auto it = t.attrs.find(name);
    if (it == t.attrs.end()) throw Error(t.where + ": attribute '" + name + "': missing");
    return it->second;
}
int64_t attr_int(const Table& t, const std::string& name) {
    if (const auto* v = std::get_if<int64_t>(&attr(t, name))) return *v;
    throw Error(t.where + ": attribute '" + name + "': expected an integer");
}
double attr_real(const Table& t, const std::string& name) {
    const AttrValue& v = attr(t, name);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* i = std::get_if<int64_t>(&v)) return double(*i);
    throw Error(t.where + ": attribute '" + name + "': expected a number");
}
std::string attr_text(const Table& t, const std::string& name) {
    if (const auto* v = std::get_if<std::string>(&attr(t, name))) return *v;
    throw Error(t.where + ": attribute '" + name + "': expected text");
}
// 64-bit hashes and seeds are stored as hex text: HDF5 readers without unsigned support read them intact.
uint64_t attr_hex(const Table& t, const std::string& name) {
    const std::string s = attr_text(t, name);
    std::size_t n = 0;
    uint64_t v = 0;
    try {
        v = std::stoull(s, &n, 16);
    } catch (const std::exception&) {
        n = 0;
    }
    if (s.empty() || n != s.size()) throw Error(t.where + ": attribute '" + name + "': expected hex text, got '" + s + "'");
    return v;
}

}  // namespace

void write_measurements(RunWriter& run, const Measurements& m) {
    Table layers;
    std::vector<std::string> name, kind;
    std::vector<int64_t> block, out_f, in_f, global;
    std::vector<double> factor;
    Table rd;
    std::vector<std::string> rd_name, codec, error;
    std::vector<int64_t> available;
    std::vector<double> bits, code_bits, out_err, kl, kl_se, proxy, seconds;
    for (const auto& l : m.layers()) {
        name.push_back(l.name), kind.push_back(l.kind), block.push_back(l.block);
        out_f.push_back(l.out_features), in_f.push_back(l.in_features);
        factor.push_back(l.proxy_factor), global.push_back(l.proxy_factor_global ? 1 : 0);
        for (const auto* p : m.points_of(l.name)) {
            rd_name.push_back(p->layer), codec.push_back(p->spec), error.push_back(p->error);
            available.push_back(p->available ? 1 : 0);
            bits.push_back(p->bits_per_weight), code_bits.push_back(p->code_bits_per_weight);
            out_err.push_back(p->output_rel_error);
            kl.push_back(p->has_kl ? p->kl : std::nan("")), kl_se.push_back(p->has_kl ? p->kl_stderr : std::nan(""));
            proxy.push_back(p->proxy_kl), seconds.push_back(p->seconds);
        }
    }
    layers.add("name", name).add("kind", kind).add("block", block).add("out_features", out_f).add("in_features", in_f);
    layers.add("proxy_factor", factor).add("proxy_factor_global", global);
    const auto& s = m.settings();
    layers.attrs = {{"model", s.model},         {"calib_tokens", s.calib_tokens}, {"calib_hash", hex64(s.calib_hash)},
                    {"kl_tokens", s.kl_tokens}, {"kl_hash", hex64(s.kl_hash)},      {"ctx", s.ctx},
                    {"sample_rows", s.sample_rows}, {"seed", hex64(s.seed)},     {"proxy_points", m.proxy_points()}};
    if (std::isfinite(m.proxy_spearman())) layers.attrs["proxy_spearman"] = m.proxy_spearman();
    rd.add("name", rd_name).add("codec", codec).add("available", available).add("error", error);
    rd.add("total_bits_per_weight", bits, "bits").add("code_bits_per_weight", code_bits, "bits");
    rd.add("output_rel_error", out_err).add("kl_mean", kl, "nats").add("kl_stderr", kl_se, "nats");
    rd.add("proxy_kl", proxy, "nats").add("seconds", seconds, "s");
    run.write_table("sensitivity", layers);
    run.write_table("rd", rd);
}

Measurements read_measurements(const RunData& run) {
    const Table& layers = run.table("sensitivity");
    const Table& rd = run.table("rd");
    Measurements m;
    SensitivitySettings s;
    s.model = attr_text(layers, "model");
    s.calib_tokens = attr_int(layers, "calib_tokens");
    s.calib_hash = attr_hex(layers, "calib_hash");
    s.kl_tokens = attr_int(layers, "kl_tokens");
    s.kl_hash = attr_hex(layers, "kl_hash");
    s.ctx = attr_int(layers, "ctx");
    s.sample_rows = attr_int(layers, "sample_rows");
    s.seed = attr_hex(layers, "seed");
    m.set_settings(s);
    const auto& name = layers.texts("name");
    const auto& kind = layers.texts("kind");
    const auto& block = layers.ints("block");
    const auto& out_f = layers.ints("out_features");
    const auto& in_f = layers.ints("in_features");
    for (std::size_t i = 0; i < layers.rows(); ++i)
        m.add_layer({name[i], kind[i], int(block[i]), out_f[i], in_f[i], -1, false});
    const auto& rd_name = rd.texts("name");
    const auto& codec = rd.texts("codec");
    const auto& available = rd.ints("available");
    const auto& error = rd.texts("error");
    const auto& bits = rd.reals("total_bits_per_weight");
    const auto& code_bits = rd.reals("code_bits_per_weight");
    const auto& out_err = rd.reals("output_rel_error");
    const auto& kl = rd.reals("kl_mean");
    const auto& kl_se = rd.reals("kl_stderr");
    const auto& seconds = rd.reals("seconds");
    for (std::size_t i = 0; i < rd.rows(); ++i) {
        if (!m.layer(rd_name[i]))
            throw Error(rd.where + ": row " + std::to_string(i) + ": layer '" + rd_name[i] + "' is not in table 'sensitivity'");
        SensitivityPoint p;
        p.layer = rd_name[i], p.spec = codec[i], p.available = available[i] != 0, p.error = error[i];
        p.bits_per_weight = bits[i], p.code_bits_per_weight = code_bits[i], p.output_rel_error = out_err[i];
        p.has_kl = std::isfinite(kl[i]);
        if (p.has_kl) p.kl = kl[i], p.kl_stderr = kl_se[i];
        p.seconds = seconds[i];
        m.set(p);
    }
    m.fit_proxy();  // factors, proxy_kl and the correlation are functions of the points
    return m;
}

void write_allocation(RunWriter& run, const Allocation& a, const AllocConstraints& constraints) {
    Table t;
    std::vector<std::string> name, codec;
    std::vector<int64_t> candidate, weights, bits, excluded, pinned, tied;
    std::vector<double> bpw, cost;
    for (const auto& l : a.layers) {
        name.push_back(l.name), codec.push_back(l.spec), candidate.push_back(l.candidate);
        weights.push_back(l.weights), bits.push_back(l.bits), bpw.push_back(l.bits_per_weight), cost.push_back(l.cost);
        excluded.push_back(l.excluded), pinned.push_back(l.pinned), tied.push_back(l.tied_group);
    }
    t.add("name", name).add("codec", codec).add("candidate", candidate).add("weights", weights);
    t.add("bits", bits, "bits").add("total_bits_per_weight", bpw, "bits").add("predicted_kl", cost, "nats");
    t.add("excluded", excluded).add("pinned", pinned).add("tied_group", tied);
    const bool bpw_budget = a.budget.unit == Budget::Unit::BitsPerWeight;
    t.attrs = {{"solver", a.solver},
               {"proven_optimal", int64_t(a.proven_optimal ? 1 : 0)},
               {"budget_unit", std::string(bpw_budget ? "bits_per_weight" : "bytes")},
               {"budget_value", a.budget.value},
               {"budget_bits", a.budget_bits},
               {"budget_bits_per_weight", a.total_weights ? double(a.budget_bits) / double(a.total_weights) : 0.0},
               {"total_bits", a.total_bits},
               {"total_weights", a.total_weights},
               {"achieved_bits_per_weight", a.bits_per_weight},
               {"predicted_kl", a.total_cost},
               {"lower_bound", a.lower_bound},
               {"gap", a.gap},
               {"lambda", a.lambda},
               {"resolution_bits", a.resolution_bits},
               {"shared_bits", a.shared_bits},
               {"shared_parts", nlohmann::json(a.shared_keys).dump()},
               {"constraints", nlohmann::json(constraints).dump()}};
    run.write_table("allocation", t);
}

Allocation read_allocation(const RunData& run) {
    const Table& t = run.table("allocation");
    Allocation a;
    a.solver = attr_text(t, "solver");
    a.proven_optimal = attr_int(t, "proven_optimal") != 0;
    const std::string unit = attr_text(t, "budget_unit");
    if (unit != "bits_per_weight" && unit != "bytes")
        throw Error(t.where + ": attribute 'budget_unit': unknown value '" + unit + "'");
    a.budget = unit == "bytes" ? Budget::bytes(attr_real(t, "budget_value")) : Budget::bits_per_weight(attr_real(t, "budget_value"));
    a.budget_bits = attr_int(t, "budget_bits");
    a.total_bits = attr_int(t, "total_bits");
    a.total_weights = attr_int(t, "total_weights");
    a.bits_per_weight = attr_real(t, "achieved_bits_per_weight");
    a.bytes = double(a.total_bits) / 8.0;
    a.total_cost = attr_real(t, "predicted_kl");
    a.lower_bound = attr_real(t, "lower_bound");
    a.gap = attr_real(t, "gap");
    a.lambda = attr_real(t, "lambda");
    a.resolution_bits = attr_int(t, "resolution_bits");
    if (t.attrs.count("shared_bits")) {  // written since shared parts are paid once; 0 before
        a.shared_bits = attr_int(t, "shared_bits");
        const auto keys = nlohmann::json::parse(attr_text(t, "shared_parts"), nullptr, false);
        if (!keys.is_array()) throw Error(t.where + ": attribute 'shared_parts': not a JSON array");
        for (const auto& k : keys) {
            if (!k.is_string()) throw Error(t.where + ": attribute 'shared_parts': not a list of strings");
            a.shared_keys.push_back(k.get<std::string>());
        }
    }
    const auto& name = t.texts("name");
    const auto& codec = t.texts("codec");
    const auto& candidate = t.ints("candidate");
    const auto& weights = t.ints("weights");
    const auto& bits = t.ints("bits");
    const auto& bpw = t.reals("total_bits_per_weight");
    const auto& cost = t.reals("predicted_kl");
    const auto& excluded = t.ints("excluded");
    const auto& pinned = t.ints("pinned");
    const auto& tied = t.ints("tied_group");
    for (std::size_t i = 0; i < t.rows(); ++i)
        a.layers.push_back({name[i], codec[i], int(candidate[i]), weights[i], bits[i], bpw[i], cost[i], excluded[i] != 0,
                            pinned[i] != 0, int(tied[i])});
    return a;
}

bool is_run_ref(const std::string& ref) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_regular_file(ref, ec)) return fs::path(ref).extension() != ".json";
    const auto colon = ref.rfind(':');
    return colon != std::string::npos && fs::is_regular_file(ref.substr(0, colon), ec);
}

RunData read_run_ref(const std::string& ref, const std::string& kind) {
    std::string path = ref, id;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(ref, ec)) {
        const auto colon = ref.rfind(':');
        if (colon != std::string::npos) path = ref.substr(0, colon), id = ref.substr(colon + 1);
    }
    const RunStore store = RunStore::open(path);
    if (id.empty()) {
        const auto runs = store.runs();
        for (auto it = runs.rbegin(); it != runs.rend() && id.empty(); ++it)
            if (it->status == RunStatus::Complete && it->info.kind == kind) id = it->id;
        if (id.empty()) throw Error(path + ": no complete " + kind + " run");
    }
    RunData run = store.read(id);
    if (run.summary.status != RunStatus::Complete)
        throw Error(run.where + ": the run is " + run_status_name(run.summary.status) + ", not complete");
    if (run.summary.info.kind != kind)
        throw Error(run.where + ": run kind '" + run.summary.info.kind + "', expected '" + kind + "'");
    return run;
}

}  // namespace quench
