// quench-cli runs FILE.h5: the runs of a project file, running and incomplete ones included.
// quench-cli show FILE.h5 [RUN]: one run (default: the newest) with its provenance, tables and reports.
#include <iostream>
#include <nlohmann/json.hpp>

#include "analysis/model_eval.h"
#include "commands.h"
#include "common/error.h"
#include "io/report_json.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "output.h"

namespace quench::cli {
namespace {

nlohmann::json attr_json(const AttrValue& v) {
    return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

std::string attr_text(const AttrValue& v) {
    if (const auto* d = std::get_if<double>(&v)) return fmt_num(*d, 6);
    if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
    return std::get<std::string>(v);
}

nlohmann::json summary_json(const RunSummary& s) {
    return {{"id", s.id},
            {"status", run_status_name(s.status)},
            {"kind", s.info.kind},
            {"command_line", s.info.command_line},
            {"seed", s.info.seed},
            {"quench_version", s.info.quench_version},
            {"git_hash", s.info.git_hash},
            {"started_utc", s.info.started_utc},
            {"finished_utc", s.info.finished_utc},
            {"message", s.message}};
}

nlohmann::json table_json(const quench::Table& t) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& c : t.columns) std::visit([&](const auto& v) { j[c.name] = v; }, c.values);
    return j;
}

std::string cell_text(const Column& c, std::size_t row) {
    if (const auto* d = std::get_if<std::vector<double>>(&c.values)) return fmt_num((*d)[row], 5);
    if (const auto* i = std::get_if<std::vector<int64_t>>(&c.values)) return std::to_string((*i)[row]);
    return std::get<std::vector<std::string>>(c.values)[row];
}

void print_table(const std::string& name, const quench::Table& t) {
    std::vector<std::string> header;
    for (const auto& c : t.columns) header.push_back(c.units.empty() ? c.name : c.name + " (" + c.units + ")");
    cli::Table out(header);
    for (std::size_t r = 0; r < t.rows(); ++r) {
        std::vector<std::string> row;
        for (const auto& c : t.columns) row.push_back(cell_text(c, r));
        out.add(std::move(row));
    }
    std::cout << "\n" << name << "\n" << out.render();
}

// The newest run when none is named: what a user who just ran a job wants to see.
std::string newest_run(const RunStore& store) {
    const auto runs = store.runs();
    if (runs.empty()) throw Error(store.path() + ": the file holds no runs");
    return runs.back().id;
}

}  // namespace

Command add_runs_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("runs", "List the runs of a project file (.h5)");
    auto file = std::make_shared<std::string>();
    sub->add_option("file", *file, "Project file written with --out")->required();
    return {sub, [file, &g] {
                const auto store = RunStore::open(*file);
                const auto runs = store.runs();
                if (g.json) {
                    nlohmann::json j = nlohmann::json::array();
                    for (const auto& r : runs) j.push_back(summary_json(r));
                    std::cout << nlohmann::json{{"file", *file}, {"runs", j}}.dump(2) << "\n";
                    return;
                }
                // The full command line is in `show` and --json; a listing keeps one short line per run.
                const auto shorten = [](const std::string& s) { return s.size() <= 90 ? s : s.substr(0, 87) + "..."; };
                cli::Table t({"run", "kind", "status", "started (UTC)", "finished (UTC)", "command / message"});
                for (const auto& r : runs)
                    t.add({r.id, r.info.kind, run_status_name(r.status), r.info.started_utc, r.info.finished_utc,
                           shorten(r.message.empty() ? r.info.command_line : r.message)});
                std::cout << t.render();
            }};
}

Command add_show_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("show", "Print one run of a project file: provenance, tables and reports");
    struct Opts {
        std::string file, run;
    };
    auto o = std::make_shared<Opts>();
    sub->add_option("file", o->file, "Project file written with --out")->required();
    sub->add_option("run", o->run, "Run id, e.g. run-0003 (default: the newest)");
    return {sub, [o, &g] {
                const auto store = RunStore::open(o->file);
                const RunData run = store.read(o->run.empty() ? newest_run(store) : o->run);
                if (g.json) {
                    nlohmann::json j = summary_json(run.summary);
                    for (const auto& [k, v] : run.attrs) j["attrs"][k] = attr_json(v);
                    for (const auto& [k, t] : run.tables) j["tables"][k] = table_json(t);
                    for (const auto& [k, a] : run.arrays) j["arrays"][k] = {{"shape", a.shape}, {"values", a.values}};
                    j["tensors"] = run.tensors;
                    std::cout << j.dump(2) << "\n";
                    return;
                }
                const auto& s = run.summary;
                cli::Table head({"field", "value"});
                head.add({"run", s.id + " (" + run_status_name(s.status) + ")"});
                for (const auto& [k, v] : run.attrs) head.add({k, attr_text(v)});
                if (!s.message.empty()) head.add({"message", s.message});
                std::cout << head.render();
                // The KL report reads best as the same two-column table quantize and eval print.
                for (const auto& [name, t] : run.tables) {
                    if (name == "kl" && t.has("kl_mean")) {
                        std::cout << "\nkl\n";
                        const auto attr = [&](const char* key) {
                            return run.attrs.count(key) ? attr_text(run.attrs.at(key)) : std::string("?");
                        };
                        print_kl_table(read_kl_report(run, name), attr("model_path"), attr("codec"));
                        continue;
                    }
                    print_table(name, t);
                }
                for (const auto& [name, a] : run.arrays)
                    std::cout << "\narray " << name << ": shape [" << (a.shape.empty() ? 0 : a.shape[0])
                              << (a.shape.size() > 1 ? ", " + std::to_string(a.shape[1]) : "") << "] (--json prints it)\n";
                if (!run.tensors.empty())
                    std::cout << "\n" << run.tensors.size() << " quantized tensors stored (quench-cli export "
                              << o->file << ":" << s.id << " ... writes them out)\n";
            }};
}

}  // namespace quench::cli
