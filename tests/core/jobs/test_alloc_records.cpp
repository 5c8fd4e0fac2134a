// Sensitivity measurements and allocations through the run store: what read_* returns equals what was
// written, field by field; missing attributes and runs of the wrong kind are errors naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "alloc/allocation_problem.h"
#include "jobs/sensitivity.h"
#include "core/alloc/alloc_test_util.h"
#include "jobs/alloc_records.h"
#include "io/run_store.h"
#include "support/errors.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

Measurements sample_measurements() {
    Measurements m;
    SensitivitySettings s;
    s.model = "/models/tiny";
    s.calib_tokens = 2048, s.calib_hash = 0xfedcba9876543210ull, s.kl_tokens = 512, s.kl_hash = 42;
    s.ctx = 128, s.sample_rows = 64, s.seed = ~uint64_t(0);  // above int64's range: must survive
    m.set_settings(s);
    m.add_layer({"model.layers.0.mlp.up_proj", "up", 0, 384, 128, -1, false});
    m.add_layer({"model.layers.0.mlp.down_proj", "down", 0, 128, 384, -1, false});
    const double kls[2][3] = {{0.05, 0.012, 0.003}, {0.08, 0.02, -1}};
    for (int l = 0; l < 2; ++l)
        for (int b = 2; b <= 4; ++b) {
            SensitivityPoint p;
            p.layer = m.layers()[l].name;
            p.spec = "rtn:b=" + std::to_string(b) + ",g=64";
            p.bits_per_weight = b + 0.25, p.code_bits_per_weight = b;
            p.output_rel_error = 0.3 / (1 << b) * (l + 1);
            p.has_kl = kls[l][b - 2] >= 0;
            if (p.has_kl) p.kl = kls[l][b - 2], p.kl_stderr = p.kl / 10;
            p.seconds = 0.01 * b;
            m.set(p);
        }
    SensitivityPoint bad;
    bad.layer = m.layers()[1].name, bad.spec = "qamw:k=11,block=512", bad.available = false;
    bad.error = "block 512 does not divide 384 columns";
    m.set(bad);
    m.fit_proxy();
    return m;
}

// fn throws a quench::Error whose message holds every one of parts.
void expect_records_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
    const std::string msg = test::error_of(fn);
    ASSERT_FALSE(msg.empty()) << "no error";
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace

TEST(AllocRecords, MeasurementsRoundTripExactly) {
    test::ScratchDir dir;
    const Measurements m = sample_measurements();
    auto store = RunStore::create_or_open(dir.file("study.h5"));
    auto run = store.begin_run(current_run_info("sensitivity", "test"));
    write_measurements(run, m);
    run.finish();
    const Measurements back = read_measurements(read_run_ref(dir.file("study.h5"), "sensitivity"));
    // The JSON form covers every field: equal JSON means equal measurements.
    EXPECT_EQ(back.to_json(), m.to_json());
    EXPECT_TRUE(back.settings() == m.settings());
    EXPECT_EQ(back.settings().seed, ~uint64_t(0));
    ASSERT_EQ(back.size(), m.size());
    const auto* p = back.find("model.layers.0.mlp.down_proj", "rtn:b=4,g=64");
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(p->has_kl);
    EXPECT_DOUBLE_EQ(p->proxy_kl, m.find(p->layer, p->spec)->proxy_kl);
    EXPECT_GT(p->proxy_kl, 0.0);
    EXPECT_FALSE(back.find("model.layers.0.mlp.down_proj", "qamw:k=11,block=512")->available);
}

TEST(AllocRecords, AllocationRoundTripsWithItsConstraints) {
    test::ScratchDir dir;
    alloc_test::GenOptions g;
    g.layers = 9;
    AllocationSpec spec = alloc_test::random_spec(7, g);
    spec.constraints.pins[spec.layers[2].name] = spec.layers[2].candidates.back().spec;
    spec.constraints.excluded_kinds = {"down"};
    const AllocationProblem problem(spec);
    const double mid = (problem.min_bits_per_weight() + problem.max_useful_bits_per_weight()) / 2;
    for (const Budget budget : {Budget::bits_per_weight(mid), Budget::bytes(problem.max_useful_bits() / 8.0 * 0.95)}) {
        const Allocation a = problem.solve_exact(budget);
        auto run = RunStore::create_or_open(dir.file("study.h5")).begin_run(current_run_info("allocate", "test"));
        write_allocation(run, a, spec.constraints);
        run.finish();
        const Allocation b = read_allocation(read_run_ref(dir.file("study.h5"), "allocate"));  // the newest
        EXPECT_EQ(b.solver, a.solver);
        EXPECT_EQ(b.proven_optimal, a.proven_optimal);
        EXPECT_EQ(b.budget.unit, a.budget.unit);
        EXPECT_EQ(b.budget.value, a.budget.value);
        EXPECT_EQ(b.budget_bits, a.budget_bits);
        EXPECT_EQ(b.total_bits, a.total_bits);
        EXPECT_EQ(b.total_weights, a.total_weights);
        EXPECT_EQ(b.total_cost, a.total_cost);
        EXPECT_EQ(b.gap, a.gap);
        EXPECT_EQ(b.resolution_bits, a.resolution_bits);
        ASSERT_EQ(b.layers.size(), a.layers.size());
        for (std::size_t i = 0; i < a.layers.size(); ++i) {
            const auto &x = a.layers[i], &y = b.layers[i];
            EXPECT_EQ(y.name, x.name);
            EXPECT_EQ(y.spec, x.spec);
            EXPECT_EQ(y.candidate, x.candidate);
            EXPECT_EQ(y.bits, x.bits);
            EXPECT_EQ(y.cost, x.cost);
            EXPECT_EQ(y.excluded, x.excluded);
            EXPECT_EQ(y.pinned, x.pinned);
            EXPECT_EQ(y.tied_group, x.tied_group);
        }
    }
}

TEST(AllocRecords, RunReferencesAreCheckedForKindAndStatus) {
    test::ScratchDir dir;
    const std::string path = dir.file("study.h5");
    EXPECT_FALSE(is_run_ref(dir.file("m.json")));
    {
        auto run = RunStore::create_or_open(path).begin_run(current_run_info("quantize", "test"));
        run.finish();
    }
    EXPECT_TRUE(is_run_ref(path));
    EXPECT_TRUE(is_run_ref(path + ":run-0001"));
    EXPECT_FALSE(is_run_ref(dir.file("m.json")));
    expect_records_error([&] { read_run_ref(path, "sensitivity"); }, {"study.h5", "no complete sensitivity run"});
    expect_records_error([&] { read_run_ref(path + ":run-0001", "allocate"); },
                         {"run-0001", "kind 'quantize', expected 'allocate'"});
    expect_records_error([&] { read_run_ref(path + ":run-0009", "allocate"); }, {"run-0009"});
    {
        auto run = RunStore::create_or_open(path).begin_run(current_run_info("allocate", "test"));
        run.fail("disk full");
    }
    expect_records_error([&] { read_run_ref(path + ":run-0002", "allocate"); }, {"run-0002", "failed"});
    // A run that claims to be an allocation but lacks the table's attributes.
    {
        auto run = RunStore::create_or_open(path).begin_run(current_run_info("allocate", "test"));
        Table t;
        t.add("name", std::vector<std::string>{"x"});
        run.write_table("allocation", t);
        run.finish();
    }
    expect_records_error([&] { read_allocation(read_run_ref(path, "allocate")); },
                         {"run-0003", "allocation", "solver"});
}
