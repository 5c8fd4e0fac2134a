#pragma once
// The state a Lagrangian solve ends in, shared by the two solvers (the exact one starts from it).
// Internal to core/alloc.
#include <cstdint>
#include <vector>

#include "alloc/allocation_problem.h"

namespace quench {

struct AllocationProblem::LagrangianPoint {
    std::vector<int> option_of_item;  // per item, the chosen option (index within the item)
    int64_t bits = 0;                 // total bits of that choice
    double cost = 0;                  // its predicted cost, summed per item
    double lambda = 0;                // cost per bit of the first hull step that did not fit
    double lower_bound = 0;           // the LP relaxation's optimum: no choice within the budget costs less
    bool proven = false;              // cost == lower_bound by construction
};

}  // namespace quench
