// End to end through the real window, as a user would: open the tiny model, choose data, select all 14
// block layers, run RTN 4-bit, see 14 bars holding the numbers core computes for the same plan and the Weights
// tab's 16 levels of a group where core puts them, measure sensitivity for a few candidates (the event loop
// keeps running meanwhile), move the budget slider and see the allocation re-solved as core solves it,
// pin a layer, apply the allocation, compare the two runs, evaluate, export packed and reopen the export.
// Every job's run is read back from the project file with core's reader and holds what the job reported;
// neither the Allocation nor the Rate-distortion tab scrolls sideways at 1280 x 800. Screenshots of each
// main view go to the build tree.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QFileInfo>
#include <QScrollArea>
#include <QScrollBar>
#include <QSlider>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTimer>
#include <QTreeWidget>
#include <QtTest>

#include "alloc/allocation_problem.h"
#include "analysis/model_eval.h"
#include "jobs/sensitivity.h"
#include "analysis/text_data.h"
#include "chart_tabs.h"
#include "charts/allocation_view.h"
#include "charts/sensitivity_heatmap.h"
#include "charts/distortion_chart.h"
#include "charts/rate_distortion_chart.h"
#include "charts/token_kl_view.h"
#include "charts/weight_histogram.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "export_dialog.h"
#include "gui_test_support.h"
#include "jobs/alloc_records.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "job_list_panel.h"
#include "job_queue.h"
#include "job_runner.h"
#include "main_window.h"
#include "method_panel.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "model_panel.h"
#include "quant/bitpack.h"
#include "quant/codec.h"
#include "jobs/model_quantizer.h"
#include "results_panel.h"
#include "weights_page.h"
#include "workbench_session.h"

using namespace quench::gui;

namespace {

constexpr int kCalibTokens = 2048;
constexpr int kEvalTokens = 1024;
constexpr int kContext = 128;
constexpr int kLayers = 14;  // every linear layer of the two blocks
const QString kSpec = QStringLiteral("rtn:b=4,g=32");

// Runs the event loop until the job ends (timeout_ms: liveness only) and counts the ticks of a 10 ms GUI
// timer that fired while the job was running: none if the job held the GUI thread for all of its run. The
// quantize and sensitivity jobs below do seconds of work (about 200 and 1200 ticks on a 2-core VM), so only a
// GUI thread that never ran during them gives 0. Counted, not timed: how late a tick may be (the < 100 ms
// target) is measured by tests/bench/bench_views (job_runner/event_loop_gap).
int waitCountingTicks(JobRunner* job, int timeout_ms) {
    int ticks = 0;
    QTimer tick;
    tick.setInterval(10);
    QObject::connect(&tick, &QTimer::timeout, [&] {
        if (job->state() == JobRunner::State::Running) ++ticks;
    });
    tick.start();
    job->waitForEnd(timeout_ms);
    tick.stop();
    return ticks;
}

// The Weights tab's levels for group `index` (row-major) of a 4-bit, g=32 RTN tensor, against core: the
// grid (code - zero) x scale over the 16 codes, from the tensor's stored scale and zero code, and every
// value core's dequantize gives that group sits on one of the lines.
void checkGroupLevels(const WeightsPage& page, const quench::QuantizedTensor& q, int64_t index) {
    constexpr int64_t kGroup = 32;
    const int64_t groups = q.cols / kGroup, row = index / groups, col = index % groups;
    QCOMPARE(page.groupRow(), row);
    QCOMPARE(page.groupIndex(), col);
    const double s = q.part("scales").data.to(torch::kFloat)[row][col].item<double>();
    const auto& zeros = q.part("zeros");
    const int zeroBits = int(zeros.bits / (q.rows * groups));
    const double z = quench::unpack_bits(zeros.data, zeroBits, q.rows * groups)[index].item<double>();
    const WeightHistogram* h = page.histogram();
    QCOMPARE(h->levelCount(), 16);
    for (int c = 0; c < 16; ++c)
        QVERIFY2(std::abs(h->level(c) - (c - z) * s) <= 1e-5 * s,
                 qPrintable(QStringLiteral("level %1: %2, core %3").arg(c).arg(h->level(c)).arg((c - z) * s)));
    const at::Tensor dq = quench::make_codec(q.spec)->dequantize(q)[row].slice(0, col * kGroup, (col + 1) * kGroup).contiguous();
    for (int64_t i = 0; i < kGroup; ++i) {
        const double v = dq[i].item<double>();
        bool onALine = false;
        for (int c = 0; c < h->levelCount(); ++c) onALine = onALine || std::abs(h->level(c) - v) <= 1e-5 * s;
        QVERIFY2(onALine, qPrintable(QStringLiteral("dequantized %1 is on no level").arg(v)));
    }
}

// The project file's run `id` through core's reader, checked complete and of `kind`.
quench::RunData readRun(const QString& project, const QString& id, const char* kind) {
    const quench::RunData run = quench::RunStore::open(project.toStdString()).read(id.toStdString());
    if (run.summary.info.kind != kind || run.summary.status != quench::RunStatus::Complete)
        qWarning("%s: kind %s, status %s", run.where.c_str(), run.summary.info.kind.c_str(), quench::run_status_name(run.summary.status));
    return run;
}

bool scrollsSideways(ChartTabs* charts, QWidget* chart) {
    charts->showChart(chart);
    QCoreApplication::processEvents();
    auto* scroll = qobject_cast<QScrollArea*>(charts->currentWidget());
    return !scroll || scroll->horizontalScrollBar()->isVisible() || scroll->horizontalScrollBar()->maximum() > 0;
}

}  // namespace

class TestWorkbenchE2e : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { test::isolateSettings(); }

    void fullWorkflow() {
        QTemporaryDir tmp;
        QVERIFY(tmp.isValid());
        MainWindow w;
        QStringList errors;
        w.errors()->setHandler([&](const QString& t, const QString& m) { errors << t + QStringLiteral(": ") + m; });
        w.resize(1280, 800);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QCOMPARE(w.size(), QSize(1280, 800));  // the screenshots' size: the docks' minimum widths fit in it

        // Data and project file.
        w.dataPanel()->setCalibPath(test::calibText());
        w.dataPanel()->setEvalPath(test::evalText());
        w.dataPanel()->setCalibTokens(kCalibTokens);
        w.dataPanel()->setEvalTokens(kEvalTokens);
        w.dataPanel()->setContext(kContext);
        const QString project = tmp.filePath(QStringLiteral("study.h5"));
        w.setProjectFile(project);

        // Open the model.
        JobRunner* load = w.openModel(test::modelDir());
        QVERIFY(load->waitForEnd(20000));
        QCOMPARE(load->state(), JobRunner::State::Finished);
        const auto& reg = w.session()->layers();
        QVERIFY(reg.size() >= 14);
        int treeLayers = 0;
        for (int b = 0; b < w.modelPanel()->tree()->topLevelItemCount(); ++b)
            treeLayers += w.modelPanel()->tree()->topLevelItem(b)->childCount();
        QCOMPARE(std::size_t(treeLayers), reg.size());

        // Select every block layer (the screenshots show the whole model) and choose RTN 4-bit.
        const QString layerA = QStringLiteral("model.layers.0.self_attn.q_proj");
        QVERIFY(w.modelPanel()->selectByFilter(QStringLiteral("model.layers.*"), false));
        const auto selected = w.modelPanel()->selectedLayers();
        QCOMPARE(selected.size(), std::size_t(kLayers));
        w.methodPanel()->setSpecText(kSpec);
        QVERIFY2(w.methodPanel()->isValid(), qPrintable(w.methodPanel()->validationMessage()));
        QVERIFY2(!test::screenshot(w, QStringLiteral("01-model-and-method")).isEmpty(), "screenshot not written at 1280 x 800");

        // Quantize: the job runs off the GUI thread (not yet ended when the call returns); the window's event
        // loop keeps running during it.
        JobRunner* quantize = w.quantizeSelection();
        QVERIFY(quantize);
        QVERIFY(quantize->isActive());
        const int ticksQuantize = waitCountingTicks(quantize, 30000);
        QCOMPARE(quantize->state(), JobRunner::State::Finished);
        QVERIFY2(ticksQuantize >= 1, qPrintable(QStringLiteral("%1 timer ticks while quantizing").arg(ticksQuantize)));
        QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));

        // One bar a layer, holding what core computes for the same plan on a model of our own.
        auto* chart = w.charts()->findChild<DistortionChart*>();
        QVERIFY(chart);
        QCOMPARE(chart->barCount(), kLayers);
        auto model = quench::LlamaModel::load(test::modelDir().toStdString());
        auto tok = quench::load_tokenizer(test::modelDir().toStdString());
        const auto calib = quench::tokenize_text_file(*tok, test::calibText().toStdString(), true, kCalibTokens);
        quench::QuantizeOptions qo;
        qo.capture.ctx = kContext;
        const auto expected = quench::quantize_model_layers(
            *model, quench::uniform_plan(selected, quench::CodecSpec::parse(kSpec.toStdString())), calib, qo);
        QCOMPARE(expected.layers.size(), std::size_t(kLayers));
        for (int i = 0; i < kLayers; ++i) {
            QCOMPARE(chart->barLabel(i).toStdString(), expected.layers[i].name);
            chart->setMetric(DistortionMetric::OutputRelError);
            QCOMPARE(chart->barValue(i), expected.layers[i].metrics.output_rel_error);
            chart->setMetric(DistortionMetric::WeightRelFro);
            QCOMPARE(chart->barValue(i), expected.layers[i].metrics.rel_fro_error);
        }
        chart->setMetric(DistortionMetric::OutputRelError);
        // The layer tree shows the same bits.
        const auto* itemA = w.modelPanel()->tree()->topLevelItem(0)->child(0);
        QCOMPARE(itemA->text(ModelPanel::NameCol), layerA);
        QCOMPARE(itemA->text(ModelPanel::BitsCol),
                 QString::number(expected.layers[0].metrics.total_bits_per_weight, 'g', 4));
        w.charts()->showChart(w.charts()->distortion());
        QVERIFY2(!test::screenshot(w, QStringLiteral("02-distortion")).isEmpty(), "screenshot not written at 1280 x 800");

        // The Weights tab follows the selection's first layer: its quantization levels are overlaid, group 0
        // first, another group from the spin box; both as core made the same tensor.
        QCOMPARE(w.session()->lastRunId(), QStringLiteral("run-0001"));
        WeightsPage* weights = w.charts()->weightsPage();
        const quench::QuantizedTensor& tensorA = expected.tensors.at(selected[0]);
        QCOMPARE(weights->histogram()->weightCount(), std::size_t(tensorA.numel()));
        checkGroupLevels(*weights, tensorA, 0);
        if (QTest::currentTestFailed()) return;
        const int64_t otherGroup = tensorA.cols / 32 + 1;  // row 1, group 1
        QVERIFY(weights->groupSpin()->maximum() >= otherGroup);
        const double firstLevel = weights->histogram()->level(0);
        weights->groupSpin()->setValue(int(otherGroup));
        checkGroupLevels(*weights, tensorA, otherGroup);
        if (QTest::currentTestFailed()) return;
        QVERIFY(weights->histogram()->level(0) != firstLevel);  // its own scale and zero
        weights->groupWeightsOnly()->setChecked(true);
        QCOMPARE(weights->histogram()->weightCount(), std::size_t(32));
        w.charts()->showChart(weights->histogram());
        QVERIFY2(!test::screenshot(w, QStringLiteral("10-weights")).isEmpty(), "screenshot not written at 1280 x 800");

        // The quantize job evaluated KL on the evaluation text; the Token KL tab shows its per-token values.
        QVERIFY(w.session()->hasKl());
        auto* tokenKl = w.charts()->findChild<TokenKlView*>();
        QVERIFY(tokenKl);
        w.charts()->showChart(tokenKl);
        const auto& report = w.session()->klReport();
        QCOMPARE(std::size_t(tokenKl->tokenCount()),
                 std::min(w.session()->evaluatedTokens().size(), ChartTabs::kMaxKlTokens));
        const int scored = int(report.first_scored_token) + 5;
        QCOMPARE(tokenKl->tokenKl(scored), double(report.per_token_kl[5]));
        QVERIFY2(!test::screenshot(w, QStringLiteral("07-token-kl")).isEmpty(), "screenshot not written at 1280 x 800");

        // Sensitivity for three candidates on the two layers.
        w.methodPanel()->setCandidates({QStringLiteral("rtn:b=2,g=32"), QStringLiteral("rtn:b=4,g=32"), QStringLiteral("rtn:b=8,g=32")});
        JobRunner* sens = w.measureSensitivity();
        QVERIFY(sens);
        QVERIFY(sens->isActive());
        const int ticksSens = waitCountingTicks(sens, 60000);
        QCOMPARE(sens->state(), JobRunner::State::Finished);
        QVERIFY2(ticksSens >= 1, qPrintable(QStringLiteral("%1 timer ticks while measuring").arg(ticksSens)));
        QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));
        // The sensitivity run reads back as the measurements the job handed the window.
        {
            QCOMPARE(w.session()->lastRunId(), QStringLiteral("run-0002"));
            const quench::RunData run = readRun(project, w.session()->lastRunId(), "sensitivity");
            QCOMPARE(run.summary.info.kind, std::string("sensitivity"));
            const quench::Measurements recorded = quench::read_measurements(run);
            const quench::Measurements& live = w.session()->measurements();
            QCOMPARE(recorded.size(), live.size());
            QCOMPARE(live.size(), std::size_t(3 * kLayers));
            for (const auto& layer : live.layers())
                for (const auto* p : live.points_of(layer.name)) {
                    const auto* r = recorded.find(layer.name, p->spec);
                    QVERIFY2(r, p->spec.c_str());
                    QCOMPARE(r->available, p->available);
                    QCOMPARE(r->bits_per_weight, p->bits_per_weight);
                    QCOMPARE(r->output_rel_error, p->output_rel_error);
                    QCOMPARE(r->has_kl, p->has_kl);
                    QCOMPARE(r->kl, p->kl);
                }
            QCOMPARE(std::get<int64_t>(run.attr("quantize_calls")), int64_t(3 * kLayers));
        }

        // The allocation view got the measured problem; moving the slider re-solves at once (the time per move
        // is measured by tests/bench/bench_views, allocation/slider_move_*).
        auto* alloc = w.charts()->findChild<AllocationView*>();
        QVERIFY(alloc);
        QVERIFY2(alloc->hasAllocation(), qPrintable(alloc->message()));
        QCOMPARE(alloc->barCount(), kLayers);
        w.charts()->showChart(alloc);
        QSlider* slider = alloc->slider();
        slider->setValue(slider->minimum());
        QCoreApplication::processEvents();
        const int64_t lowBits = alloc->allocation().total_bits;
        slider->setValue(slider->maximum());  // no event processing: the re-solve is synchronous
        QVERIFY(alloc->hasAllocation());
        QVERIFY(alloc->allocation().total_bits > lowBits);
        // The view's answer is core's answer for that budget.
        const quench::AllocationProblem problem(w.session()->allocationSpec());
        const auto direct = problem.solve_lagrangian(quench::Budget::bits_per_weight(alloc->budgetBitsPerWeight()));
        QCOMPARE(alloc->allocation().total_bits, direct.total_bits);
        QVERIFY2(!test::screenshot(w, QStringLiteral("03-allocation")).isEmpty(), "screenshot not written at 1280 x 800");
        QVERIFY2(!scrollsSideways(w.charts(), alloc), "the Allocation tab scrolls sideways at 1280 x 800");
        QVERIFY2(!scrollsSideways(w.charts(), w.charts()->rateDistortion()), "the Rate-distortion tab scrolls sideways at 1280 x 800");
        QVERIFY2(!test::screenshot(w, QStringLiteral("11-rate-distortion")).isEmpty(), "screenshot not written at 1280 x 800");
        w.charts()->showChart(w.charts()->sensitivity());
        QVERIFY2(!test::screenshot(w, QStringLiteral("08-sensitivity")).isEmpty(), "screenshot not written at 1280 x 800");
        w.charts()->showChart(alloc);

        // Pin layer A to 8 bits from the tree: the allocation honours it at the lowest budget.
        w.modelPanel()->pinLayer(layerA, QStringLiteral("rtn:b=8,g=32"));
        slider->setValue(slider->minimum());
        QCoreApplication::processEvents();
        QVERIFY(alloc->hasAllocation());
        QCOMPARE(QString::fromStdString(alloc->allocation().layers[0].spec), QStringLiteral("rtn:b=8,g=32"));
        QVERIFY(alloc->allocation().layers[0].pinned);

        // Apply it: a run of kind apply, quantizing with per-layer settings.
        JobRunner* apply = w.applyAllocation();
        QVERIFY(apply);
        QVERIFY(apply->waitForEnd(30000));
        QCOMPARE(apply->state(), JobRunner::State::Finished);
        QCOMPARE(w.session()->layerOutcomes().at(selected[0]).spec, QStringLiteral("rtn:b=8,g=32"));
        QCOMPARE(readRun(project, QStringLiteral("run-0003"), "apply").summary.info.kind, std::string("apply"));

        // Results: the project file lists the three runs (quantize, sensitivity, apply); compare the two
        // quantize runs layer by layer.
        QCOMPARE(w.session()->lastRunId(), QStringLiteral("run-0003"));
        QCOMPARE(w.resultsPanel()->runCount(), 3);  // refreshed as each run was recorded
        QVERIFY(w.resultsPanel()->compare(project, QStringLiteral("run-0001"), project, QStringLiteral("run-0003")));
        QVERIFY(w.resultsPanel()->runBoxA()->currentData().toString().endsWith(QStringLiteral("|run-0001")));
        QVERIFY(w.resultsPanel()->runBoxB()->currentData().toString().endsWith(QStringLiteral("|run-0003")));
        QCOMPARE(w.resultsPanel()->comparison()->topLevelItemCount(), kLayers);
        auto* rowA = w.resultsPanel()->comparison()->topLevelItem(0);
        QCOMPARE(rowA->text(ResultsPanel::SpecACol), QStringLiteral("rtn:b=4,g=32"));
        QCOMPARE(rowA->text(ResultsPanel::SpecBCol), QStringLiteral("rtn:b=8,g=32"));
        QVERIFY(rowA->text(ResultsPanel::DeltaErrCol).startsWith(QLatin1Char('-')));  // 8 bits: smaller error
        w.showResults();
        QVERIFY2(!test::screenshot(w, QStringLiteral("04-results")).isEmpty(), "screenshot not written at 1280 x 800");

        // Evaluate (Ctrl+K): the eval run holds the KL report the window shows.
        JobRunner* eval = w.evaluate();
        QVERIFY(eval);
        QVERIFY(eval->waitForEnd(30000));
        QCOMPARE(eval->state(), JobRunner::State::Finished);
        {
            QCOMPARE(w.session()->lastRunId(), QStringLiteral("run-0004"));
            const quench::RunData run = readRun(project, w.session()->lastRunId(), "eval");
            QCOMPARE(run.summary.info.kind, std::string("eval"));
            const quench::KlReport recorded = quench::read_kl_report(run);
            const quench::KlReport& live = w.session()->klReport();
            QCOMPARE(recorded.kl_mean, live.kl_mean);
            QCOMPARE(recorded.kl_p99, live.kl_p99);
            QCOMPARE(recorded.ppl_test, live.ppl_test);
            QCOMPARE(recorded.top1_agreement, live.top1_agreement);
            QCOMPARE(recorded.protocol.text_tokens, live.protocol.text_tokens);
            QCOMPARE(recorded.per_token_kl, live.per_token_kl);
            // The layers the evaluated model had quantized: the applied allocation's.
            const auto layers = quench::read_layer_results(run);
            QCOMPARE(layers.size(), std::size_t(kLayers));
            QCOMPARE(QString::fromStdString(layers[0].spec.to_string()), w.session()->layerOutcomes().at(selected[0]).spec);
            QCOMPARE(std::get<double>(run.attr("total_bpw")), w.session()->totalBitsPerWeight());
        }

        // Export packed through the dialog, with the size estimate shown before writing.
        w.showExportDialog();
        auto* dialog = w.findChild<ExportDialog*>();
        QVERIFY(dialog);
        const QString packed = tmp.filePath(QStringLiteral("packed"));
        dialog->setFormat(ExportFormat::Packed);
        dialog->setPath(packed);
        QVERIFY(dialog->estimatedBytes() > 0);
        dialog->resize(520, 320);
        QVERIFY2(!test::screenshot(*dialog, QStringLiteral("05-export-dialog")).isEmpty(), "screenshot not written at 1280 x 800");
        const double estimate = dialog->estimatedBytes();
        QSignalSpy exported(w.session(), &WorkbenchSession::exported);
        dialog->accept();
        QVERIFY(w.jobs()->waitForIdle(30000));
        QCOMPARE(exported.count(), 1);
        const qint64 bytes = exported.at(0).at(1).toLongLong();
        QVERIFY(QFileInfo(packed + QStringLiteral("/model.safetensors")).isFile());
        // The estimate leaves out only the safetensors header and byte rounding.
        QVERIFY2(std::abs(double(bytes) - estimate) < 0.05 * estimate,
                 qPrintable(QStringLiteral("estimate %1, file %2").arg(estimate).arg(bytes)));
        // The export run: what was written where, and its size on disk as the job reported it.
        {
            QCOMPARE(w.session()->lastRunId(), QStringLiteral("run-0005"));
            const quench::RunData run = readRun(project, w.session()->lastRunId(), "export");
            QCOMPARE(run.summary.info.kind, std::string("export"));
            QCOMPARE(std::get<std::string>(run.attr("format")), std::string("packed"));
            QCOMPARE(QString::fromStdString(std::get<std::string>(run.attr("out"))), packed);
            QCOMPARE(std::get<int64_t>(run.attr("bytes")), int64_t(bytes));
            QCOMPARE(std::get<int64_t>(run.attr("bytes")), int64_t(QFileInfo(packed + QStringLiteral("/model.safetensors")).size()));
            QCOMPARE(std::get<int64_t>(run.attr("quantized_tensors")), int64_t(kLayers));
            QCOMPARE(std::get<double>(run.attr("total_bpw")), w.session()->totalBitsPerWeight());
        }
        QCOMPARE(w.resultsPanel()->runCount(), 5);

        // Reopen the result: the packed checkpoint loads back as a model with the same layers.
        JobRunner* reopen = w.openModel(packed);
        QVERIFY(reopen->waitForEnd(20000));
        QCOMPARE(reopen->state(), JobRunner::State::Finished);
        QCOMPARE(w.session()->modelDir(), packed);
        QCOMPARE(w.session()->layers().size(), reg.size());
        QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));
        w.jobPanel()->parentWidget()->raise();
        QVERIFY2(!test::screenshot(w, QStringLiteral("06-jobs-after-reopen")).isEmpty(), "screenshot not written at 1280 x 800");
    }
};

QTEST_MAIN(TestWorkbenchE2e)
#include "test_workbench_e2e.moc"
