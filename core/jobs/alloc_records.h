#pragma once
// Sensitivity measurements and bit allocations as run-store records (docs/hdf5-schema.md), so a project
// file holds them next to the quantize runs they lead to: `allocate` reads a sensitivity run, `apply`
// reads an allocate run, and any HDF5 reader sees plain tables.
#include <string>

#include "io/run_store.h"

namespace quench {

class Measurements;
struct Allocation;
struct AllocConstraints;

// Table "rd" (one row per layer x setting) and table "sensitivity" (one row per layer; the measurement
// settings as its attributes). read_measurements rebuilds exactly what was written (proxy refitted from it).
void write_measurements(RunWriter& run, const Measurements& m);
Measurements read_measurements(const RunData& run);

// Table "allocation" (one row per layer) with the budget, totals, solver and constraints (JSON text) as
// its attributes. read_allocation returns the Allocation that was written.
void write_allocation(RunWriter& run, const Allocation& a, const AllocConstraints& constraints);
Allocation read_allocation(const RunData& run);

// "study.h5:run-0003", or "study.h5" for its newest complete run of `kind`. Throws quench::Error naming
// the file when it is not a project file, the run is missing or not complete, or none of that kind exists.
RunData read_run_ref(const std::string& ref, const std::string& kind);
// True when ref names an existing file that is not JSON by its name, or FILE:RUN of an existing file.
bool is_run_ref(const std::string& ref);

}  // namespace quench
