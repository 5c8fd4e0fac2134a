// The QAT job through the session: quantize two layers with ParetoQ, train them for a few steps on the
// calibration text, and check that every step's loss reached the Training tab, that the trained layers
// replaced the PTQ ones (bits unchanged, weights moved) and that the run can be cancelled.
// Skipped in a build whose core has no QAT engine.
#include <QSignalSpy>
#include <QtTest>

#include <cmath>

#include "chart_tabs.h"
#include "charts/training_curves.h"
#include "gui_test_support.h"
#include "job_queue.h"
#include "job_runner.h"
#include "workbench_session.h"

using namespace quench::gui;

class TestQatTraining : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { test::isolateSettings(); }

    void trainsQuantizedLayersAndStreamsTheLoss() {
        JobQueue queue;
        WorkbenchSession session(&queue);
        ChartTabs charts(&session);
        session.data().calibPath = test::calibText();
        session.data().evalPath = test::evalText();
        session.data().calibTokens = 2048;
        session.data().evalTokens = 512;
        session.data().context = 64;
        QVERIFY(session.loadModel(test::modelDir())->waitForEnd(20000));
        const std::vector<std::size_t> layers{0, 6};
        JobRunner* ptq = session.quantize(layers, QStringLiteral("paretoq:b=2"));
        QVERIFY(ptq->waitForEnd(30000));
        QCOMPARE(ptq->state(), JobRunner::State::Finished);
        const auto before = session.layerOutcomes();

        QSignalSpy steps(&session, &WorkbenchSession::qatStep);
        QatRequest r;
        r.tokens = QStringLiteral("2k");
        r.lr = 1e-3;
        JobRunner* qat = session.trainQat(r);
        QVERIFY(qat);
        QVERIFY(qat->waitForEnd(60000));
        QVERIFY2(qat->state() == JobRunner::State::Finished, qPrintable(qat->errorMessage()));
        QCoreApplication::processEvents();  // the last queued steps
        QVERIFY(steps.count() > 0);
        auto* curves = charts.findChild<TrainingCurves*>();
        QVERIFY(curves);
        curves->flush();
        QCOMPARE(curves->lossPointCount(), steps.count());
        for (int i = 0; i < steps.count(); ++i) QVERIFY(std::isfinite(steps.at(i).at(1).toDouble()));
        charts.resize(1280, 800);
        charts.showChart(charts.training());
        charts.show();
        QVERIFY(QTest::qWaitForWindowExposed(&charts));
        QVERIFY(!test::screenshot(charts, QStringLiteral("09-training")).isEmpty());

        const auto after = session.layerOutcomes();
        QCOMPARE(after.size(), before.size());
        for (std::size_t l : layers) {
            QCOMPARE(after.at(l).spec, before.at(l).spec);
            QCOMPARE(after.at(l).bitsPerWeight, before.at(l).bitsPerWeight);
            QVERIFY(after.at(l).relError != before.at(l).relError);  // training moved the weights
        }
    }

    void refusesLayersWithoutAQatForm() {
        JobQueue queue;
        WorkbenchSession session(&queue);
        session.data().calibPath = test::calibText();
        QVERIFY(session.loadModel(test::modelDir())->waitForEnd(20000));
        QVERIFY(session.quantize({0}, QStringLiteral("rtn:b=4,g=32"))->waitForEnd(30000));
        QatRequest r;
        r.tokens = QStringLiteral("1k");
        JobRunner* qat = session.trainQat(r);
        QVERIFY(qat->waitForEnd(30000));
        QCOMPARE(qat->state(), JobRunner::State::Failed);
        QVERIFY2(qat->errorMessage().contains(QStringLiteral("paretoq, lcqat or liftquant")), qPrintable(qat->errorMessage()));
    }
};

QTEST_MAIN(TestQatTraining)
#include "test_qat_training.moc"
