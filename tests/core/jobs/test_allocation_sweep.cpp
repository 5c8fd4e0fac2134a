// Sweeping allocations on the real model: each entry's measured bits meet its budget, a uniform entry's
// prediction is the sum of its layers' costs, more bits give less measured KL, and the model is left at
// full precision afterwards, also when the sweep is cancelled.
#include <gtest/gtest.h>

#include <cmath>

#include "alloc/allocation_problem.h"
#include "io/model_loading.h"
#include "jobs/allocation_sweep.h"
#include "jobs/sensitivity.h"
#include "analysis/text_data.h"
#include "common/error.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "support/errors.h"
#include "support/progress.h"
#include "support/test_paths.h"

using namespace quench;
using quench::test::CancelAfter;

namespace {

const char* kCands = "rtn:b=2,g=64;rtn:b=3,g=64;rtn:b=4,g=64";

struct SweepFixture {
    std::unique_ptr<LlamaModel> model = load_model(test::real_model_dir());
    std::unique_ptr<Tokenizer> tok = load_tokenizer(test::real_model_dir());
    std::vector<int32_t> train =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.train.txt"), true, 2048);
    std::vector<int32_t> eval =
        tokenize_text_file(*tok, test::shared_data("tinystories-valid/tinystories_val.eval.txt"), true, 1024);
    Measurements m;
    SweepFixture() {
        SensitivityOptions o;
        o.ctx = 128;
        o.sample_rows = 128;
        measure_sensitivity(*model, model->layers().select_glob("model.layers.0.mlp.*"), parse_candidate_list(kCands),
                            train, std::vector<int32_t>(train.begin(), train.begin() + 512), tok->bos_id(), o, m);
    }
    SweepOptions options() const {
        SweepOptions o;
        o.quantize.capture.ctx = 128;
        o.eval.ctx = 128;
        return o;
    }
    bool any_replaced() const {
        for (std::size_t i = 0; i < model->layers().size(); ++i)
            if (model->is_replaced(i)) return true;
        return false;
    }
};

SweepFixture& sweep_fx() {
    static SweepFixture f;
    return f;
}

}  // namespace

TEST(AllocationSweep, EntriesMeetBudgetsAndPredictionsAddUp) {
    auto& f = sweep_fx();
    const AllocationProblem problem(to_allocation_spec(f.m, CostSource::Kl));
    const auto uniform = parse_candidate_list("rtn:b=2,g=64;rtn:b=4,g=64");
    const AllocationSweep s = sweep_allocations(*f.model, problem, {2.7, 3.6}, uniform, f.train, f.eval,
                                                f.tok->bos_id(), f.options());
    EXPECT_FALSE(f.any_replaced());
    ASSERT_EQ(s.entries.size(), 4u);
    for (int i = 0; i < 2; ++i) {
        const auto& e = s.entries[i];
        EXPECT_FALSE(e.uniform);
        const Allocation a = problem.solve_lagrangian(Budget::bits_per_weight(e.budget_bits_per_weight));
        // RTN's stored bits are what the candidates declared, so the measured average is the allocation's.
        EXPECT_NEAR(e.bits_per_weight, a.bits_per_weight, 1e-12);
        EXPECT_LE(e.bits_per_weight, e.budget_bits_per_weight);
        EXPECT_DOUBLE_EQ(e.predicted_kl, a.total_cost);
    }
    // Uniform 2 and 4 bits: asymmetric g=64 costs b + (16 + b) / 64 bits per weight.
    EXPECT_EQ(s.entries[2].label, uniform[0]);
    EXPECT_DOUBLE_EQ(s.entries[2].bits_per_weight, 2 + 18.0 / 64);
    EXPECT_DOUBLE_EQ(s.entries[3].bits_per_weight, 4 + 20.0 / 64);
    for (int i = 2; i < 4; ++i) {
        double sum = 0;
        for (const auto& l : f.m.layers()) sum += f.m.find(l.name, s.entries[i].label)->kl;
        EXPECT_NEAR(s.entries[i].predicted_kl, sum, 1e-12);
    }
    // More bits, less KL: uniform 2 > allocated 2.7 (one layer at 3 bits) > allocated 3.6 > uniform 4 (4.3 bpw).
    EXPECT_GT(s.entries[2].kl.kl_mean, s.entries[0].kl.kl_mean);
    EXPECT_GT(s.entries[0].kl.kl_mean, s.entries[1].kl.kl_mean);
    EXPECT_GT(s.entries[1].kl.kl_mean, s.entries[3].kl.kl_mean);
    EXPECT_EQ(s.spearman_points, 4);
    EXPECT_DOUBLE_EQ(s.spearman, 1.0);  // the ordering above, and the predictions order the same way
}

TEST(AllocationSweep, BadBudgetsAndCancellationLeaveTheModelAtFullPrecision) {
    auto& f = sweep_fx();
    const AllocationProblem problem(to_allocation_spec(f.m, CostSource::Kl));
    const std::string msg = test::error_of(
        [&] { sweep_allocations(*f.model, problem, {1.5}, {}, f.train, f.eval, f.tok->bos_id(), f.options()); });
    EXPECT_NE(msg.find("budget 1.5 bpw"), std::string::npos) << msg;
    EXPECT_NE(test::error_of([&] {
                  sweep_allocations(*f.model, problem, {}, {"rtn:b=8,g=64"}, f.train, f.eval, f.tok->bos_id(), f.options());
              }).find("not measured"),
              std::string::npos);
    CancelAfter cancel(3);
    EXPECT_THROW(sweep_allocations(*f.model, problem, {3.0, 3.5}, {}, f.train, f.eval, f.tok->bos_id(), f.options(), &cancel),
                 Cancelled);
    EXPECT_FALSE(f.any_replaced());
}
