// Allocation problems and results as JSON: write, read back, compare; reading errors name the field.
#include <gtest/gtest.h>

#include "alloc/allocation_json.h"
#include "alloc_test_util.h"
#include "support/errors.h"

using namespace quench;
using namespace quench::alloc_test;
using nlohmann::json;
using quench::test::error_of;

namespace {

AllocationSpec constrained_spec() {
    GenOptions g;
    g.layers = 14, g.candidates = 5;
    auto s = random_spec(77, g);
    s.layers[3].candidates[0].extra_bits = 1234.5;  // a share of a shared codebook
    s.layers.push_back({"lm_head", "lm_head", -1, 512, {}});
    s.constraints.pins[s.layers[5].name] = s.layers[5].candidates[2].spec;
    s.constraints.limits = {2.0, INFINITY};
    s.constraints.layer_limits[s.layers[6].name] = {2.25, 6.0};
    s.constraints.excluded_kinds = {"lm_head"};
    s.constraints.excluded_bits_per_weight = 32;
    for (auto& L : s.layers)  // tied q/k/v need common settings
        if (L.kind == "k" || L.kind == "v") L.candidates = s.layers[L.block * 7].candidates;
    s.constraints.tied = tied_groups_per_block(s.layers, {"q", "k", "v"});
    return s;
}

}  // namespace

TEST(AllocationJson, ProblemRoundTripsThroughText) {
    const AllocationProblem p(constrained_spec(), ProblemOptions{4096});
    const json j = problem_to_json(p);
    EXPECT_EQ(j["format"], "quench.alloc.problem");
    EXPECT_FALSE(j["constraints"]["limits"].contains("max_bits_per_weight"));  // infinite: left out
    const AllocationProblem back = problem_from_json(json::parse(j.dump()));
    EXPECT_EQ(problem_to_json(back), j);
    EXPECT_EQ(back.options().exact_steps, 4096);
    EXPECT_TRUE(std::isinf(back.spec().constraints.limits.max_bits_per_weight));
    EXPECT_EQ(back.spec().layers[3].candidates[0].extra_bits, 1234.5);
    EXPECT_EQ(back.min_bits(), p.min_bits());
    const Budget b = Budget::bits_per_weight(p.min_bits_per_weight() + 0.7);
    EXPECT_EQ(json(back.solve_exact(b)), json(p.solve_exact(b)));
    EXPECT_EQ(json(back.solve_lagrangian(b)), json(p.solve_lagrangian(b)));
}

TEST(AllocationJson, AllocationRoundTripsThroughText) {
    const AllocationProblem p(constrained_spec());
    for (const auto& a : {p.solve_exact(Budget::bytes(p.min_bits() / 8.0 + 3000)), p.solve_lagrangian(Budget::bits_per_weight(p.min_bits_per_weight() + 0.9))}) {
        const json j = a;
        const Allocation back = json::parse(j.dump()).get<Allocation>();
        EXPECT_EQ(json(back), j);
        EXPECT_EQ(back.solver, a.solver);
        EXPECT_EQ(back.proven_optimal, a.proven_optimal);
        EXPECT_EQ(back.budget.unit, a.budget.unit);
        EXPECT_EQ(back.budget.value, a.budget.value);
        EXPECT_EQ(back.total_bits, a.total_bits);
        EXPECT_EQ(back.total_cost, a.total_cost);  // bit-exact: nlohmann writes doubles to round-trip
        EXPECT_EQ(back.lower_bound, a.lower_bound);
        EXPECT_EQ(back.lambda, a.lambda);
        ASSERT_EQ(back.layers.size(), a.layers.size());
        for (size_t l = 0; l < a.layers.size(); ++l) {
            EXPECT_EQ(back.layers[l].spec, a.layers[l].spec);
            EXPECT_EQ(back.layers[l].candidate, a.layers[l].candidate);
            EXPECT_EQ(back.layers[l].bits, a.layers[l].bits);
            EXPECT_EQ(back.layers[l].cost, a.layers[l].cost);
            EXPECT_EQ(back.layers[l].excluded, a.layers[l].excluded);
            EXPECT_EQ(back.layers[l].pinned, a.layers[l].pinned);
            EXPECT_EQ(back.layers[l].tied_group, a.layers[l].tied_group);
        }
        EXPECT_EQ(back.layers.back().spec, "fp32");
    }
}

TEST(AllocationJson, ReadingErrorsNameTheField) {
    const AllocationProblem p(constrained_spec());
    json j = problem_to_json(p);
    j["layers"][1]["candidates"][0]["cost"] = "low";
    EXPECT_EQ(error_of([&] { problem_from_json(j); }),
              "allocation JSON: layers[1].candidates[0].cost: expected a number");
    j = problem_to_json(p);
    j["layers"][2].erase("weights");
    EXPECT_EQ(error_of([&] { problem_from_json(j); }), "allocation JSON: layers[2]: missing field 'weights'");
    j = problem_to_json(p);
    j["constraints"]["pins"]["x"] = 3;
    EXPECT_EQ(error_of([&] { problem_from_json(j); }), "allocation JSON: constraints.pins.x: expected a string");
    j = problem_to_json(p);
    j["format"] = "quench.alloc.allocation";
    EXPECT_NE(error_of([&] { problem_from_json(j); }).find("format is 'quench.alloc.allocation'"), std::string::npos);
    j = problem_to_json(p);
    j["constraints"]["pins"]["nope"] = "rtn:b=4";  // valid JSON, contradictory problem: the builder's error
    EXPECT_EQ(error_of([&] { problem_from_json(j); }), "allocation: pin on unknown layer 'nope'");
    json a = p.solve_lagrangian(Budget::bits_per_weight(p.max_useful_bits_per_weight()));
    a["budget"]["unit"] = "bits";
    EXPECT_EQ(error_of([&] { a.get<Allocation>(); }),
              "allocation JSON: budget.unit: 'bits' is not 'bits_per_weight' or 'bytes'");
}
