#include "alloc_options.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "jobs/alloc_records.h"
#include "quant/codec_spec.h"

namespace quench::cli {

void AllocProblemOpts::add_to(CLI::App* sub) {
    sub->add_option("--measurements", measurements, "Sensitivity measurements: the JSON file or a sensitivity run FILE.h5[:RUN]")
        ->required();
    sub->add_option("--pin", pins, "LAYER=SPEC: the layer takes this measured setting; repeatable");
    sub->add_option("--min", min_bits, "Fewest bits per weight any layer may take")->check(CLI::NonNegativeNumber);
    sub->add_option("--max", max_bits, "Most bits per weight any layer may take")->check(CLI::PositiveNumber);
    sub->add_option("--tie", ties, "Layer glob: matching layers of one block take the same setting; repeatable");
    sub->add_option("--exclude", excluded, "Layer kind kept at 16 bits (counted in the budget): q k v o gate up down; repeatable");
    sub->add_option("--cost", cost, "Cost per setting: kl (measured only), proxy, auto (measured, else proxy)")
        ->check(CLI::IsMember({"kl", "proxy", "auto"}));
}

AllocationSpec AllocProblemOpts::build(CostSource* source_out) const {
    const Measurements m = is_run_ref(measurements) ? read_measurements(read_run_ref(measurements, "sensitivity"))
                                                    : Measurements::load(measurements);
    const CostSource source = cost_source_from_name(cost);
    if (source_out) *source_out = source;
    AllocationSpec spec = to_allocation_spec(m, source);
    spec.constraints.limits = {min_bits, max_bits};
    for (const auto& p : pins) {
        const auto eq = p.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == p.size()) throw Error("--pin: '" + p + "' is not LAYER=SPEC");
        std::string layer = p.substr(0, eq);
        if (layer.size() > 7 && layer.compare(layer.size() - 7, 7, ".weight") == 0) layer.resize(layer.size() - 7);
        spec.constraints.pins[layer] = CodecSpec::parse(p.substr(eq + 1)).to_string();
    }
    // --tie GLOB: the matching layers take one setting, one group per transformer block.
    for (const auto& glob : ties) {
        std::map<int, std::vector<std::string>> groups;
        for (const auto& l : spec.layers)
            if (fnmatch(glob.c_str(), l.name.c_str(), 0) == 0) groups[l.block].push_back(l.name);
        if (groups.empty()) throw Error("--tie: '" + glob + "' matches no layer in " + measurements);
        for (auto& [block, names] : groups)
            if (names.size() >= 2) spec.constraints.tied.push_back(names);
    }
    for (const auto& kind : excluded) {
        const bool known =
            std::any_of(spec.layers.begin(), spec.layers.end(), [&](const AllocLayer& l) { return l.kind == kind; });
        if (!known) throw Error("--exclude: no layer of kind '" + kind + "' in " + measurements);
        spec.constraints.excluded_kinds.insert(kind);
    }
    return spec;
}

Budget parse_budget(const std::string& text, const std::string& option) {
    std::size_t n = 0;
    double v = 0;
    try {
        v = std::stod(text, &n);
    } catch (const std::exception&) {
        n = 0;
    }
    std::string unit = text.substr(n);
    for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::map<std::string, double> bytes = {{"b", 1},      {"kb", 1e3},       {"mb", 1e6},           {"gb", 1e9},
                                                 {"kib", 1024}, {"mib", 1048576.0}, {"gib", 1073741824.0}};
    if (n > 0 && std::isfinite(v) && v > 0) {
        if (unit == "bpw") return Budget::bits_per_weight(v);
        if (auto it = bytes.find(unit); it != bytes.end()) return Budget::bytes(v * it->second);
    }
    throw Error(option + ": '" + text + "' is not a positive N bpw or N bytes (B, KB, MB, GB, KiB, MiB, GiB)");
}

}  // namespace quench::cli
