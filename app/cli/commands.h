#pragma once
// Each quench-cli subcommand registers its options on the parser and returns the function that runs it.
// Commands only parse, call core and print: no maths lives here.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace quench {
struct KlReport;
}

namespace quench::cli {

struct GlobalOptions {
    bool json = false;   // one JSON object on stdout instead of tables
    int threads = 0;     // 0 = LibTorch's default
    bool quiet = false;  // no progress on stderr
    std::string command_line;  // as typed, recorded with every run written to a project file
};

struct Command {
    CLI::App* sub;
    std::function<void()> run;  // called after parsing when sub was chosen
};

Command add_info_command(CLI::App& app, const GlobalOptions& g);
Command add_eval_command(CLI::App& app, const GlobalOptions& g);
Command add_generate_command(CLI::App& app, const GlobalOptions& g);
Command add_synth_command(CLI::App& app, const GlobalOptions& g);
Command add_quantize_command(CLI::App& app, const GlobalOptions& g);
Command add_runs_command(CLI::App& app, const GlobalOptions& g);
Command add_show_command(CLI::App& app, const GlobalOptions& g);
Command add_export_command(CLI::App& app, const GlobalOptions& g);
Command add_sensitivity_command(CLI::App& app, const GlobalOptions& g);
Command add_allocate_command(CLI::App& app, const GlobalOptions& g);
Command add_apply_command(CLI::App& app, const GlobalOptions& g);
Command add_sweep_command(CLI::App& app, const GlobalOptions& g);
Command add_qat_command(CLI::App& app, const GlobalOptions& g);

// The KL/perplexity report as a two-column table on stdout (shared by eval and quantize).
void print_kl_table(const KlReport& r, const std::string& ref, const std::string& model);

}  // namespace quench::cli
