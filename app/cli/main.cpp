// quench-cli: the command-line front end over quench_core. Progress goes to stderr, results to stdout
// (tables, or one JSON object with --json); failures print one line and exit non-zero.
#include <torch/torch.h>

#include <iostream>
#include <vector>

#include "commands.h"
#include "common/error.h"
#include "common/heap.h"
#include "jobs/run_records.h"

int main(int argc, char** argv) {
    quench::use_bounded_heap();
    using namespace quench::cli;
    CLI::App app{"quench-cli: quantize, evaluate and inspect Llama-family models"};
    app.set_version_flag("--version", std::string(QUENCH_VERSION));
    app.require_subcommand(1);
    GlobalOptions g;
    g.command_line = quench::command_line_text(argc, argv);
    app.add_flag("--json", g.json, "Print one machine-readable JSON object on stdout");
    app.add_option("--threads", g.threads, "CPU threads for LibTorch (default: all cores)")->check(CLI::NonNegativeNumber);
    app.add_flag("-q,--quiet", g.quiet, "No progress output on stderr");
    const std::vector<Command> commands = {
        add_info_command(app, g),
        add_eval_command(app, g),
        add_generate_command(app, g),
        add_synth_command(app, g),
        add_quantize_command(app, g),
        add_runs_command(app, g),
        add_show_command(app, g),
        add_export_command(app, g),
        add_sensitivity_command(app, g),
        add_allocate_command(app, g),
        add_apply_command(app, g),
        add_sweep_command(app, g),
        add_qat_command(app, g),
    };
    // Global flags are accepted after the subcommand too ("quench-cli eval M --json").
    for (const auto& c : commands) c.sub->fallthrough();
    CLI11_PARSE(app, argc, argv);
    try {
        if (g.threads > 0) at::set_num_threads(g.threads);
        for (const auto& c : commands)
            if (c.sub->parsed()) c.run();
    } catch (const quench::Cancelled&) {
        std::cerr << "quench-cli: cancelled\n";
        return 130;
    } catch (const std::exception& e) {
        std::cerr << "quench-cli: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
