// quench-cli allocate --measurements FILE.json|FILE.h5[:RUN] --budget 2.5bpw|800MB [--pin LAYER=SPEC]...
// [--min B] [--max B] [--tie GLOB]... [--exclude KIND]... [--exact] [--cost kl|proxy|auto] [--save FILE.json]
// [--out FILE.h5]: chooses one measured setting per layer so that the total bits meet the budget and the
// summed predicted KL is least (core/alloc).
#include <iostream>
#include <nlohmann/json.hpp>

#include "alloc/allocation_json.h"
#include "alloc/allocation_problem.h"
#include "alloc_options.h"
#include "jobs/sensitivity.h"
#include "commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "jobs/alloc_records.h"
#include "output.h"
#include "run_recording.h"

namespace quench::cli {
namespace {

struct AllocateOpts {
    AllocProblemOpts problem;
    std::string budget, save, out;
    bool exact = false;
};

nlohmann::json allocation_rows(const Allocation& a) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& l : a.layers)
        rows.push_back({{"layer", l.name}, {"spec", l.spec}, {"bits", l.bits}, {"bits_per_weight", l.bits_per_weight},
                        {"predicted_kl", l.cost}, {"pinned", l.pinned}, {"tied_group", l.tied_group}});
    return rows;
}

void allocate(const AllocateOpts& o, const GlobalOptions& g, RunWriter* run) {
    CostSource source;
    const AllocationSpec spec = o.problem.build(&source);
    const AllocationProblem problem(spec);
    const Budget budget = parse_budget(o.budget);
    const Allocation a = o.exact ? problem.solve_exact(budget) : problem.solve_lagrangian(budget);
    nlohmann::json file = {{"format", "quench.allocation"}, {"version", 1},          {"measurements", o.problem.measurements},
                           {"cost", cost_source_name(source)}, {"allocation", a}};
    if (!o.save.empty()) write_file_atomic(o.save, file.dump(1) + "\n");
    if (run) {
        write_allocation(*run, a, spec.constraints);
        run->set_attrs({{"measurements", o.problem.measurements}, {"cost", std::string(cost_source_name(source))},
                        {"budget", o.budget}});
    }
    if (g.json) {
        nlohmann::json j = {{"solver", a.solver},
                            {"proven_optimal", a.proven_optimal},
                            {"budget_bits", a.budget_bits},
                            {"total_bits", a.total_bits},
                            {"shared_bits", a.shared_bits},
                            {"shared_parts", a.shared_keys},
                            {"total_weights", a.total_weights},
                            {"bits_per_weight", a.bits_per_weight},
                            {"bytes", a.bytes},
                            {"predicted_kl", a.total_cost},
                            {"gap", a.gap},
                            {"cost", cost_source_name(source)},
                            {"layers", allocation_rows(a)}};
        std::cout << j.dump(2) << "\n";
        return;
    }
    Table t({"layer", "spec", "bits", "bpw", "predicted KL", "note"});
    for (const auto& l : a.layers) {
        std::string note = l.pinned ? "pinned" : "";
        if (l.tied_group >= 0) note += (note.empty() ? "" : ", ") + std::string("tied #") + std::to_string(l.tied_group);
        t.add({l.name, l.spec, std::to_string(l.bits), fmt_num(l.bits_per_weight, 4), fmt_num(l.cost, 6), note});
    }
    std::cout << t.render() << "\n"
              << "total: " << a.total_bits << " bits (" << fmt_bytes(a.bytes) << ") for " << a.total_weights
              << " weights = " << fmt_num(a.bits_per_weight, 4) << " bits per weight; budget " << a.budget_bits
              << " bits\n";
    if (a.shared_bits > 0) {
        std::string parts;
        for (const auto& k : a.shared_keys) parts += (parts.empty() ? "" : ", ") + k;
        std::cout << "of which " << a.shared_bits << " bits are parts stored once and shared by every layer with "
                  << "that setting: " << parts << "\n";
    }
    std::cout << "predicted KL (sum of per-layer " << cost_source_name(source) << " costs): " << fmt_num(a.total_cost, 6)
              << " nats; solver " << a.solver << (a.proven_optimal ? ", proven optimal" : ", gap <= " + fmt_num(a.gap, 6))
              << "\n";
    if (!o.save.empty() && !g.quiet) std::cerr << "saved " << o.save << "\n";
}

}  // namespace

Command add_allocate_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("allocate", "Choose a measured codec setting per layer to meet a bit budget at least predicted KL");
    auto o = std::make_shared<AllocateOpts>();
    o->problem.add_to(sub);
    sub->add_option("--budget", o->budget, "Budget: average bits per weight (2.5bpw) or a size (800MB, 1.2GiB)")->required();
    sub->add_flag("--exact", o->exact, "Exact knapsack solver instead of the Lagrangian one");
    sub->add_option("--save", o->save, "Write the allocation as JSON (input of quench-cli apply)");
    sub->add_option("--out", o->out, "Project file (.h5) to record the allocation in (input of quench-cli apply)");
    return {sub, [o, &g] { run_recorded(o->out, "allocate", 0, g, [&](RunWriter* run) { allocate(*o, g, run); }); }};
}

}  // namespace quench::cli
