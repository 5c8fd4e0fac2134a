#pragma once
// JSON for allocation problems and results, for the CLI's files until they go into the HDF5 run store.
// Writing then reading gives back equal values (doubles round-trip exactly). Reading throws quench::Error
// naming the field: "allocation JSON: layers[2].candidates[0].cost: expected a number".
//
//   nlohmann::json j = problem_to_json(problem);          AllocationProblem p = problem_from_json(j);
//   nlohmann::json k = allocation;                        Allocation a = k.get<Allocation>();
#include <nlohmann/json.hpp>

#include "alloc/allocation.h"
#include "alloc/allocation_problem.h"
#include "alloc/allocation_spec.h"

namespace quench {

void to_json(nlohmann::json& j, const AllocCandidate& c);
void from_json(const nlohmann::json& j, AllocCandidate& c);
void to_json(nlohmann::json& j, const AllocLayer& l);
void from_json(const nlohmann::json& j, AllocLayer& l);
void to_json(nlohmann::json& j, const BitsRange& r);  // an infinite max is left out
void from_json(const nlohmann::json& j, BitsRange& r);
void to_json(nlohmann::json& j, const AllocConstraints& c);
void from_json(const nlohmann::json& j, AllocConstraints& c);
void to_json(nlohmann::json& j, const AllocationSpec& s);
void from_json(const nlohmann::json& j, AllocationSpec& s);
void to_json(nlohmann::json& j, const Budget& b);  // {"unit": "bits_per_weight" | "bytes", "value": 2.37}
void from_json(const nlohmann::json& j, Budget& b);
void to_json(nlohmann::json& j, const LayerChoice& c);
void from_json(const nlohmann::json& j, LayerChoice& c);
void to_json(nlohmann::json& j, const Allocation& a);
void from_json(const nlohmann::json& j, Allocation& a);

// The problem file: {"format": "quench.alloc.problem", "version": 1, "layers": [...], "constraints": {...},
// "exact_steps": N}. Reading builds (and so checks) the problem.
nlohmann::json problem_to_json(const AllocationProblem& problem);
AllocationProblem problem_from_json(const nlohmann::json& j);

}  // namespace quench
