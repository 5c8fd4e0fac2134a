// Issue 17, item 2, on the real model as a user meets it: measure the candidates of the report
// (rtn 2/3/4-bit and a LiftQuant setting whose lift matrix every layer shares) on all 14 block layers, then
//  - one definition of bits: the allocator's price of a uniform setting, the Method pane's estimate and the
//    run that quantizes with it are the same number (the shared matrix counted once);
//  - the allocation at any budget is never predicted worse than a uniform candidate that fits the budget,
//    with either solver; at the uniform LiftQuant size it is LiftQuant-everywhere or better;
//  - a cancelled sensitivity job keeps the pairs it finished.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QtTest>

#include "alloc/allocation_problem.h"
#include "jobs/sensitivity.h"
#include "gui_test_support.h"
#include "job_queue.h"
#include "job_runner.h"
#include "quant/codec_spec.h"
#include "workbench_session.h"

using namespace quench::gui;

namespace {

const QStringList kCandidates = {QStringLiteral("rtn:b=2,g=32"), QStringLiteral("rtn:b=3,g=32"),
                                 QStringLiteral("rtn:b=4,g=32"), QStringLiteral("liftquant:D=20,d=8,had")};

// Bits of one spec on every layer of the problem, the shared part once (what a run of it will count).
struct Uniform {
    std::string spec;
    int64_t bits = 0;
    double cost = 0;
};

std::vector<Uniform> uniformSettings(const quench::AllocationSpec& spec) {
    std::vector<Uniform> out;
    for (const auto& first : spec.layers[0].candidates) {
        Uniform u{first.spec};
        for (const auto& l : spec.layers) {
            const quench::AllocCandidate* c = nullptr;
            for (const auto& x : l.candidates)
                if (x.spec == first.spec) c = &x;
            if (!c) return {};
            u.bits += int64_t(std::ceil(double(l.weights) * c->bits_per_weight - 1e-6));
            u.cost += c->cost;
        }
        u.bits += first.shared_bits;
        out.push_back(u);
    }
    return out;
}

}  // namespace

class TestAllocationVsUniform : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { test::isolateSettings(); }

    void allocationBeatsEveryFittingUniformSetting() {
        JobQueue queue;
        WorkbenchSession session(&queue);
        JobRunner* load = session.loadModel(test::modelDir());
        QVERIFY(load->waitForEnd(20000));
        QCOMPARE(load->state(), JobRunner::State::Finished);
        session.data().calibPath = test::calibText();
        session.data().evalPath = test::evalText();
        session.data().calibTokens = 2048;
        session.data().evalTokens = 1024;
        session.data().context = 128;
        std::vector<std::size_t> layers;
        for (std::size_t i = 0; i < session.layers().size(); ++i)
            if (session.layers().at(i).block >= 0) layers.push_back(i);
        QCOMPARE(layers.size(), std::size_t(14));

        JobRunner* sens = session.measureSensitivity(layers, kCandidates);
        QVERIFY(sens->waitForEnd(240000));
        QCOMPARE(sens->state(), JobRunner::State::Finished);
        const quench::AllocationSpec spec = session.allocationSpec();
        const quench::AllocationProblem problem(spec);
        const auto uniforms = uniformSettings(spec);
        QCOMPARE(uniforms.size(), std::size_t(4));

        // One definition of bits: the allocator's uniform LiftQuant equals the Method pane's estimate.
        const std::string lift = quench::CodecSpec::parse("liftquant:D=20,d=8,had").to_string();
        const auto lu = std::find_if(uniforms.begin(), uniforms.end(), [&](const Uniform& u) { return u.spec == lift; });
        QVERIFY(lu != uniforms.end());
        for (const auto& c : spec.layers[0].candidates)  // the fp16 lift matrix is the one shared part
            QCOMPARE(c.shared_bits, c.spec == lift ? int64_t(20 * 8 * 16) : int64_t(0));
        const double estimate = session.estimateBitsPerWeight(lift, layers);
        QVERIFY2(std::abs(estimate * double(problem.total_weights()) - double(lu->bits)) <= 1.0,
                 qPrintable(QStringLiteral("estimate %1 b/w, allocator %2 b/w").arg(estimate)
                                .arg(double(lu->bits) / double(problem.total_weights()))));

        // The invariant, at the report's budget, at each uniform setting's own size and between them.
        std::vector<int64_t> budgets = {int64_t(2.6 * double(problem.total_weights()))};
        for (const auto& u : uniforms) budgets.push_back(u.bits), budgets.push_back(u.bits + problem.total_weights() / 20);
        for (int64_t b : budgets) {
            if (b < problem.min_bits()) continue;
            const auto budget = quench::Budget::bytes(double(b) / 8.0);
            for (const bool exact : {false, true}) {
                const auto a = exact ? problem.solve_exact(budget) : problem.solve_lagrangian(budget);
                QVERIFY(a.total_bits <= b);
                for (const auto& u : uniforms)
                    if (u.bits <= b)
                        QVERIFY2(a.total_cost <= u.cost * (1 + 1e-12),
                                 qPrintable(QStringLiteral("%1 at %2 b/w: predicted %3, uniform %4 predicted %5")
                                                .arg(QLatin1String(exact ? "exact" : "lagrangian"))
                                                .arg(double(b) / double(problem.total_weights()))
                                                .arg(a.total_cost).arg(QString::fromStdString(u.spec)).arg(u.cost)));
            }
        }

        // Applied at the uniform LiftQuant size, the run counts exactly the bits the allocator promised.
        const auto at_lift = problem.solve_exact(quench::Budget::bytes(double(lu->bits) / 8.0));
        QVERIFY(at_lift.total_cost <= lu->cost * (1 + 1e-12));
        JobRunner* apply = session.applyAllocation(at_lift);
        QVERIFY(apply->waitForEnd(120000));
        QCOMPARE(apply->state(), JobRunner::State::Finished);
        // (Each layer's measured bits are rounded up to a whole bit by the allocator: at most one bit a layer.)
        QVERIFY2(std::abs(session.totalBitsPerWeight() - at_lift.bits_per_weight) <= double(layers.size()) / double(problem.total_weights()),
                 qPrintable(QStringLiteral("run %1 b/w, allocation %2 b/w").arg(session.totalBitsPerWeight()).arg(at_lift.bits_per_weight)));
    }

    // Issue 17 item 9: a cancelled sensitivity job keeps the pairs it finished, and a re-run completes the set.
    void aCancelledSensitivityKeepsItsFinishedPairs() {
        JobQueue queue;
        WorkbenchSession session(&queue);
        JobRunner* load = session.loadModel(test::modelDir());
        QVERIFY(load->waitForEnd(20000));
        session.data().calibPath = test::calibText();
        session.data().calibTokens = 1024;
        session.data().evalTokens = 512;
        session.data().context = 128;
        std::vector<std::size_t> layers;
        for (std::size_t i = 0; i < session.layers().size(); ++i)
            if (session.layers().at(i).block >= 0) layers.push_back(i);
        const QStringList cands = {QStringLiteral("rtn:b=2,g=32"), QStringLiteral("rtn:b=4,g=32")};
        JobRunner* first = session.measureSensitivity(layers, cands);
        // Issue 17 item 9 as well: the heatmap fills in while the job runs, not only at its end.
        std::vector<std::size_t> live;
        QObject::connect(&session, &WorkbenchSession::sensitivityMeasured, first, [&] {
            if (first->isActive()) live.push_back(session.measurements().size());
        });
        QObject::connect(first, &JobRunner::progressed, first, [first](double f, const QString&) {
            if (f >= 0.4) first->cancel();
        });
        QVERIFY(first->waitForEnd(120000));
        QCOMPARE(first->state(), JobRunner::State::Cancelled);
        QVERIFY2(live.size() >= 2, qPrintable(QStringLiteral("%1 updates while running").arg(live.size())));
        for (std::size_t i = 1; i < live.size(); ++i) QVERIFY(live[i] > live[i - 1]);
        const std::size_t kept = session.measurements().size();
        QVERIFY(kept >= live.back());
        QVERIFY2(kept > 0 && kept < 2 * layers.size(), qPrintable(QStringLiteral("%1 pairs kept").arg(kept)));
        JobRunner* rest = session.measureSensitivity(layers, cands);
        QVERIFY(rest->waitForEnd(120000));
        QCOMPARE(rest->state(), JobRunner::State::Finished);
        QCOMPARE(session.measurements().size(), 2 * layers.size());
    }
};

QTEST_MAIN(TestAllocationVsUniform)
#include "test_allocation_vs_uniform.moc"
