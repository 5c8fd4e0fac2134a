#include "run_recording.h"

#include <iostream>

#include "jobs/run_records.h"

namespace quench::cli {

void run_recorded(const std::string& out, const std::string& kind, uint64_t seed, const GlobalOptions& g,
                  const std::function<void(RunWriter*)>& job) {
    const std::string id = quench::run_recorded(out, current_run_info(kind, g.command_line, seed), job);
    if (!id.empty() && !g.json && !g.quiet) std::cerr << "recorded " << out << ":" << id << "\n";
}

}  // namespace quench::cli
