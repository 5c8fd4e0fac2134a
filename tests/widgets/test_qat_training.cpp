// The QAT job through the session: quantize two layers with ParetoQ, train them for a few steps on the
// calibration text, and check that every step's loss reached the Training tab and that the trained layers
// replaced the PTQ ones (bits unchanged, weights moved). Through the window: a run with a checkpoint
// directory is cancelled after a few steps, a fresh start on that checkpoint is refused, Resume continues
// it from the saved step to the curve core's trainer gives uninterrupted, and the project file holds the
// cancelled run and the resumed one as core's reader sees them.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QFileInfo>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

#include "analysis/text_data.h"
#include "chart_tabs.h"
#include "charts/training_curves.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "gui_test_support.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "job_queue.h"
#include "job_runner.h"
#include "main_window.h"
#include "method_panel.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "model_panel.h"
#include "qat/qat_trainer.h"
#include "jobs/model_quantizer.h"
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

        const auto after = session.layerOutcomes();
        QCOMPARE(after.size(), before.size());
        for (std::size_t l : layers) {
            QCOMPARE(after.at(l).spec, before.at(l).spec);
            QCOMPARE(after.at(l).bitsPerWeight, before.at(l).bitsPerWeight);
            QVERIFY(after.at(l).relError != before.at(l).relError);  // training moved the weights
        }
    }

    // Issue 17 item 2: the bits a run has after QAT are the ones shown before training (the Method pane's
    // "after QAT"), not a surprise afterwards: LiftQuant's trained input scales are priced in advance.
    void bitsAfterQatArePredictedBeforeTraining() {
        JobQueue queue;
        WorkbenchSession session(&queue);
        session.data().calibPath = test::calibText();
        session.data().calibTokens = 1024;
        session.data().context = 64;
        QVERIFY(session.loadModel(test::modelDir())->waitForEnd(20000));
        const std::vector<std::size_t> layers{0, 1, 6};
        const std::string spec = "liftquant:D=16,d=8";
        JobRunner* ptq = session.quantize(layers, QString::fromStdString(spec));
        QVERIFY(ptq->waitForEnd(60000));
        QCOMPARE(ptq->state(), JobRunner::State::Finished);
        const double plain = session.estimateBitsPerWeight(spec, layers);
        const double predicted = session.estimateBitsPerWeight(spec, layers, true);
        QVERIFY(std::abs(session.totalBitsPerWeight() - plain) < 1e-12);
        QVERIFY2(predicted > plain + 1e-3, qPrintable(QStringLiteral("%1 vs %2").arg(predicted).arg(plain)));
        QatRequest r;
        r.tokens = QStringLiteral("1k");
        JobRunner* qat = session.trainQat(r);
        QVERIFY(qat && qat->waitForEnd(60000));
        QVERIFY2(qat->state() == JobRunner::State::Finished, qPrintable(qat->errorMessage()));
        QVERIFY2(std::abs(session.totalBitsPerWeight() - predicted) < 1e-12,
                 qPrintable(QStringLiteral("run %1, predicted %2").arg(session.totalBitsPerWeight()).arg(predicted)));
    }

    void cancelledRunResumesFromItsCheckpoint() {
        constexpr int kCalib = 2048, kEval = 512, kContext = 64;
        const QString budget = QStringLiteral("12k"), spec = QStringLiteral("paretoq:b=2");
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        MainWindow w;
        QStringList errors;
        w.errors()->setHandler([&](const QString& t, const QString& m) { errors << t + QStringLiteral(": ") + m; });
        w.dataPanel()->setCalibPath(test::calibText());
        w.dataPanel()->setEvalPath(test::evalText());
        w.dataPanel()->setCalibTokens(kCalib);
        w.dataPanel()->setEvalTokens(kEval);
        w.dataPanel()->setContext(kContext);
        const QString project = tmp.filePath(QStringLiteral("study.h5"));
        w.setProjectFile(project);
        QVERIFY(w.openModel(test::modelDir())->waitForEnd(20000));
        QVERIFY(w.modelPanel()->selectByFilter(QStringLiteral("model.layers.0.self_attn.q_proj,model.layers.0.mlp.down_proj"), false));
        const auto layers = w.modelPanel()->selectedLayers();
        QCOMPARE(layers.size(), std::size_t(2));
        w.methodPanel()->setSpecText(spec);
        JobRunner* ptq = w.quantizeSelection();
        QVERIFY(ptq && ptq->waitForEnd(30000));
        QCOMPARE(ptq->state(), JobRunner::State::Finished);

        QatRequest settings;
        settings.tokens = budget;
        settings.lr = 1e-3;
        settings.checkpointDir = tmp.filePath(QStringLiteral("ckpt"));
        w.methodPanel()->setQatRequest(settings);
        std::vector<qint64> steps;
        std::vector<double> losses;
        JobRunner* train = nullptr;
        connect(w.session(), &WorkbenchSession::qatStep, this, [&](qint64 step, double loss, double) {
            steps.push_back(step);
            losses.push_back(loss);
            if (step == 3 && train) train->cancel();
        });

        // Train (the QAT section's button), cancelled after step 3: the trainer saves the steps it finished.
        train = w.trainQat(false);
        QVERIFY(train && train->waitForEnd(60000));
        QCoreApplication::processEvents();
        QCOMPARE(train->state(), JobRunner::State::Cancelled);
        QVERIFY(!steps.empty());
        const qint64 saved = steps.back();
        QVERIFY(saved >= 3);
        for (std::size_t i = 0; i < steps.size(); ++i) QCOMPARE(steps[i], qint64(i + 1));
        QVERIFY(QFileInfo::exists(qatCheckpointFile(settings.checkpointDir)));
        const QString cancelledRun = w.session()->lastRunId();
        const auto store = quench::RunStore::open(project.toStdString());
        QCOMPARE(store.read(cancelledRun.toStdString()).summary.status, quench::RunStatus::Cancelled);
        QCOMPARE(store.read(cancelledRun.toStdString()).summary.info.kind, std::string("qat"));

        // Train again on that directory would silently continue the old run: refused, naming the file.
        errors.clear();
        JobRunner* fresh = w.trainQat(false);
        QVERIFY(fresh && fresh->waitForEnd(30000));
        QCOMPARE(fresh->state(), JobRunner::State::Failed);
        QCOMPARE(errors.size(), 1);
        QVERIFY2(errors[0].contains(qatCheckpointFile(settings.checkpointDir)) && errors[0].contains(QStringLiteral("Resume")),
                 qPrintable(errors[0]));
        errors.clear();

        // Resume: the step counter goes on from the saved step, and the curve is the whole run's.
        const std::size_t streamedBefore = steps.size();
        JobRunner* resume = w.trainQat(true);
        QVERIFY(resume && resume->waitForEnd(60000));
        QVERIFY2(resume->state() == JobRunner::State::Finished, qPrintable(resume->errorMessage()));
        QCoreApplication::processEvents();
        QVERIFY(steps.size() > streamedBefore);
        QCOMPARE(steps[streamedBefore], saved + 1);
        const QatCurve& curve = w.session()->qatCurve();
        QCOMPARE(curve.resumedFrom, saved);
        QCOMPARE(qint64(curve.losses.size()), curve.totalSteps);
        QCOMPARE(qint64(steps.size() - streamedBefore), curve.totalSteps - saved);
        for (qint64 i = 0; i < curve.totalSteps; ++i) {
            QCOMPARE(curve.steps[std::size_t(i)], i + 1);
            // Before the checkpoint: the cancelled run's losses; after it: what the resumed run streamed.
            const double streamed = i < saved ? losses[std::size_t(i)] : losses[streamedBefore + std::size_t(i - saved)];
            QCOMPARE(curve.losses[std::size_t(i)], streamed);
        }
        TrainingCurves* chart = w.charts()->training();
        chart->flush();
        QCOMPARE(qint64(chart->lossPointCount()), curve.totalSteps);
        QCOMPARE(chart->lossPoint(int(saved)), QPointF(double(saved + 1), curve.losses[std::size_t(saved)]));
        w.resize(1280, 800);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QVERIFY2(!test::screenshot(w, QStringLiteral("09-training")).isEmpty(), "screenshot not written at 1280 x 800");

        // Core's trainer, uninterrupted, from the same PTQ init with the same options: the same curve.
        auto model = quench::LlamaModel::load(test::modelDir().toStdString());
        auto tok = quench::load_tokenizer(test::modelDir().toStdString());
        const auto calib = quench::tokenize_text_file(*tok, test::calibText().toStdString(), true, kCalib);
        quench::QuantizeOptions qo;
        qo.capture.ctx = kContext;
        const auto init = quench::quantize_model_layers(*model, quench::uniform_plan(layers, quench::CodecSpec::parse(spec.toStdString())),
                                                         calib, qo);
        const auto text = quench::tokenize_text_file(*tok, test::calibText().toStdString(), true);
        const auto heldout = quench::tokenize_text_file(*tok, test::evalText().toStdString(), true, kEval);
        quench::QatOptions o;
        o.tokens = quench::parse_token_budget(budget.toStdString(), int64_t(text.size()));
        o.lr = settings.lr;
        o.scale_lr = settings.scaleLr;
        o.ctx = kContext;
        const quench::QatResult direct = quench::train_qat(*model, init.tensors, text, heldout, o);
        QCOMPARE(direct.total_steps, int64_t(curve.totalSteps));
        for (std::size_t i = 0; i < direct.losses.size(); ++i)
            QVERIFY2(std::abs(direct.losses[i] - curve.losses[i]) <= 1e-9 * std::abs(direct.losses[i]),
                     qPrintable(QStringLiteral("step %1: core %2, window %3").arg(i + 1).arg(direct.losses[i]).arg(curve.losses[i])));

        // The resumed run in the project file: the whole curve, where it resumed, the trained tensors.
        const QString resumedRun = w.session()->lastRunId();
        QVERIFY(resumedRun != cancelledRun);
        const quench::RunData run = quench::RunStore::open(project.toStdString()).read(resumedRun.toStdString());
        QCOMPARE(run.summary.status, quench::RunStatus::Complete);
        QCOMPARE(run.summary.info.kind, std::string("qat"));
        QCOMPARE(std::get<int64_t>(run.attr("resumed_from")), int64_t(saved));
        QCOMPARE(std::get<int64_t>(run.attr("steps")), int64_t(curve.totalSteps));
        QCOMPARE(run.table("qat_loss").reals("loss"), curve.losses);
        QCOMPARE(run.table("qat_kl").reals("kl"), curve.klValues);
        QCOMPARE(run.tensors.size(), std::size_t(2));
        for (std::size_t l : layers) {
            const std::string name = w.session()->layers().at(l).name;
            const quench::QuantizedTensor stored = quench::from_stored(quench::RunStore::open(project.toStdString()).read_tensor(resumedRun.toStdString(), name));
            const quench::QuantizedTensor* live = w.session()->quantizedTensor(l);
            QVERIFY(live);
            QVERIFY(torch::equal(stored.part("scales").data, live->part("scales").data));
            QVERIFY(torch::equal(stored.part("codes").data, live->part("codes").data));
        }
        QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));
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
        QVERIFY2(qat->errorMessage().contains(QString::fromStdString(quench::qat_codec_names())), qPrintable(qat->errorMessage()));
    }
};

QTEST_MAIN(TestQatTraining)
#include "test_qat_training.moc"
