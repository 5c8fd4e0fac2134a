#include "run_recording.h"

#include <iostream>
#include <optional>

#include "common/error.h"
#include "io/run_store.h"

namespace quench::cli {
namespace {

// The job's own error is what the user must see, so a failure to record its end (a full disk) only
// leaves the run incomplete, which `quench-cli runs` reports.
void record_end(RunWriter& run, const std::string& error) {
    try {
        error.empty() ? run.cancel() : run.fail(error);
    } catch (const std::exception&) {
    }
}

}  // namespace

void run_recorded(const std::string& out, const std::string& kind, uint64_t seed, const GlobalOptions& g,
                  const std::function<void(RunWriter*)>& job) {
    if (out.empty()) {
        job(nullptr);
        return;
    }
    RunWriter run = RunStore::create_or_open(out).begin_run(current_run_info(kind, g.command_line, seed));
    try {
        job(&run);
    } catch (const Cancelled&) {
        record_end(run, "");
        throw;
    } catch (const std::exception& e) {
        record_end(run, e.what());
        throw;
    }
    run.finish();
    if (!g.json && !g.quiet) std::cerr << "recorded " << out << ":" << run.id() << "\n";
}

}  // namespace quench::cli
