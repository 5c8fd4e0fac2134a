#pragma once
// The allocation problem as `allocate` and `sweep` both take it from the command line: where the
// measurements come from, which cost to trust, and the constraints (pins, min/max bits, ties, exclusions).
#include <CLI/CLI.hpp>

#include <limits>
#include <string>
#include <vector>

#include "alloc/allocation_spec.h"
#include "jobs/sensitivity.h"

namespace quench::cli {

struct AllocProblemOpts {
    std::string measurements, cost = "auto";
    std::vector<std::string> pins, ties, excluded;
    double min_bits = 0, max_bits = std::numeric_limits<double>::infinity();

    void add_to(CLI::App* sub);
    // Reads the measurements (JSON file or sensitivity run FILE.h5[:RUN]) and states the problem.
    // Throws quench::Error naming the option and value that do not fit the measurements.
    AllocationSpec build(CostSource* source_out = nullptr) const;
};

// "2.5bpw" -> bits per weight; "800MB", "1.2GiB", "5000B" -> bytes. Throws naming `option`.
Budget parse_budget(const std::string& text, const std::string& option = "--budget");

}  // namespace quench::cli
