#pragma once
// The one way a subcommand records itself in a project file (--out FILE.h5): the run starts before the
// work, so another process (the GUI) sees it running; an error or cancellation marks it failed or
// cancelled rather than leaving it looking complete.
#include <cstdint>
#include <functional>
#include <string>

#include "commands.h"

namespace quench {
class RunWriter;
}

namespace quench::cli {

// quench::run_recorded (jobs/run_records.h) with this command's kind, seed and command line; says on stderr
// which run it recorded.
void run_recorded(const std::string& out, const std::string& kind, uint64_t seed, const GlobalOptions& g,
                  const std::function<void(RunWriter*)>& job);

}  // namespace quench::cli
