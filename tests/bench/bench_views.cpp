// View redraw time at real model sizes (issue 17: every view updates in under 100 ms with 224 layers, the
// count of a Llama-2-7B). One update as the user waits for it: the change, the events it posts, and the repaint
// of what shows it, timed on the GUI thread (manual time). The workbench is the widget tests' setup
// (tests/widgets/test_layer_views.cpp, test_allocation_export.cpp, test_charts.cpp): a 32-block tiny Llama
// (224 block layers + lm_head) opened and RTN-quantized in a 1280 x 800 window with a calibration text, and
// the hand-built 224-layer sensitivity measurements of tests/widgets/synthetic_measurements.h. Each case puts
// its view back (untimed) before each update so that the update does its work again. Counters: worst_ms (the
// slowest update of the run) and target_ms (100, issue 17's limit). Runs on Qt's offscreen platform unless
// QT_QPA_PLATFORM says otherwise. Results and the machine's description go to docs/benchmarks.md.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <benchmark/benchmark.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QScrollBar>
#include <QSettings>
#include <QSlider>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTimer>
#include <QTreeWidget>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "analysis/text_data.h"
#include "chart_tabs.h"
#include "charts/allocation_view.h"
#include "charts/distortion_chart.h"
#include "charts/layer_bar_plot.h"
#include "charts/rate_distortion_chart.h"
#include "charts/sensitivity_heatmap.h"
#include "charts/token_kl_view.h"
#include "common/progress.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "job_runner.h"
#include "main_window.h"
#include "method_panel.h"
#include "model/tokenizer.h"
#include "model_panel.h"
#include "support/tiny_model.h"
#include "synthetic_measurements.h"
#include "workbench_session.h"

using namespace quench::gui;

namespace {

constexpr double kTargetMs = 100;  // issue 17: no view may hold the event loop longer per update

const QString kSharedData = QStringLiteral(QUENCH_SHARED_DATA);
QString modelDir() { return kSharedData + QStringLiteral("/tinystories-656k"); }
QString calibText() { return kSharedData + QStringLiteral("/tinystories-valid/tinystories_val.train.txt"); }
QString evalText() { return kSharedData + QStringLiteral("/tinystories-valid/tinystories_val.eval.txt"); }

// Everything the cases update, built once (the first case that runs pays for it, untimed).
struct Workbench {
    QTemporaryDir tmp;
    std::unique_ptr<MainWindow> w;
    quench::Measurements m224x4;  // 32 blocks x 7 kinds, 4 settings: the heatmap and rate-distortion
    quench::Measurements m224x6;  // 6 settings: the Allocation tab (test_allocation_export)
    quench::Measurements m1001x7;  // 143 blocks, 7 settings: a standalone allocation view (test_charts)
    std::unique_ptr<AllocationView> alloc1001;
    std::unique_ptr<quench::Tokenizer> tok;
    std::vector<int32_t> klIds;  // the Tokens tab's first ChartTabs::kMaxKlTokens tokens of the evaluation text
    std::vector<float> kl;
    int sliderMove = 0;
};

std::unique_ptr<Workbench> g_bench;
QString g_setupError;

void pump() { QCoreApplication::processEvents(); }

bool waitFor(JobRunner* job, int timeoutMs, const char* what) {
    if (!job) {
        g_setupError = QStringLiteral("%1: no job started").arg(QString::fromLatin1(what));
        return false;
    }
    if (!job->waitForEnd(timeoutMs) || job->state() != JobRunner::State::Finished) {
        g_setupError = QStringLiteral("%1: %2").arg(QString::fromLatin1(what), job->errorMessage());
        return false;
    }
    return true;
}

// The window of test_layer_views' 224-layer test: 1280 x 800, the 32-block tiny Llama opened, its 224 block
// layers quantized with rtn:b=4,g=32 and a calibration text (so the output error is known).
std::unique_ptr<Workbench> build() {
    auto b = std::make_unique<Workbench>();
    if (!QFile::exists(modelDir() + QStringLiteral("/tokenizer.json")) || !QFile::exists(calibText())) {
        g_setupError = QStringLiteral("shared data missing under ") + kSharedData;
        return nullptr;
    }
    const std::string llama = quench::test::write_tiny_llama(b->tmp.path().toStdString(), "llama32", 64, 128, 32, /*tied=*/true);
    QFile::copy(modelDir() + QStringLiteral("/tokenizer.json"), QString::fromStdString(llama) + QStringLiteral("/tokenizer.json"));

    b->w = std::make_unique<MainWindow>();
    MainWindow& w = *b->w;
    QStringList errors;
    w.errors()->setHandler([&errors](const QString& t, const QString& m) { errors << t + QStringLiteral(": ") + m; });
    w.resize(1280, 800);
    w.show();
    pump();
    w.dataPanel()->setEvalPath(QString());
    w.dataPanel()->setCalibPath(calibText());
    w.dataPanel()->setCalibTokens(512);
    w.dataPanel()->setContext(128);
    if (!waitFor(w.openModel(QString::fromStdString(llama)), 60000, "open the 32-block model")) return nullptr;
    if (!w.modelPanel()->selectByFilter(QStringLiteral("model.layers.*"), false)) {
        g_setupError = QStringLiteral("selecting model.layers.* failed");
        return nullptr;
    }
    w.methodPanel()->setSpecText(QStringLiteral("rtn:b=4,g=32"));
    if (!waitFor(w.quantizeSelection(), 600000, "quantize 224 layers")) return nullptr;
    w.errors()->setHandler({});
    if (!errors.isEmpty() || w.session()->layerResults().size() != 224) {
        g_setupError = QStringLiteral("setup: %1 results; %2").arg(w.session()->layerResults().size()).arg(errors.join(QStringLiteral("; ")));
        return nullptr;
    }

    b->m224x4 = test::syntheticMeasurements(32, {2, 3, 4, 8});
    b->m224x6 = test::syntheticMeasurements(32, {2, 3, 4, 5, 6, 8});
    b->m1001x7 = test::syntheticMeasurements(143, {2, 3, 4, 5, 6, 7, 8});
    b->alloc1001 = std::make_unique<AllocationView>();
    b->alloc1001->setMeasurements(b->m1001x7, quench::CostSource::Auto);
    b->alloc1001->resize(1280, 700);
    b->alloc1001->show();

    // The Tokens tab as ChartTabs::refreshKl fills it: the first 2000 evaluated tokens; KL per token drawn from
    // a log-normal spread (the shape a real report has: most tokens small, a long tail), BOS unscored.
    b->tok = quench::load_tokenizer(modelDir().toStdString());
    b->klIds = quench::tokenize_text_file(*b->tok, evalText().toStdString(), true, int64_t(ChartTabs::kMaxKlTokens));
    std::mt19937 rng(17);
    std::lognormal_distribution<float> spread(-3.0f, 1.2f);
    b->kl.resize(b->klIds.size());
    for (float& v : b->kl) v = spread(rng);
    if (!b->kl.empty()) b->kl[0] = std::nanf("");
    pump();
    return b;
}

Workbench* workbench() {
    static bool tried = false;
    if (!tried) {
        tried = true;
        g_bench = build();
    }
    return g_bench.get();
}

// Every view at its starting point, whatever case ran before (or was filtered out).
void baseline(Workbench& b) {
    MainWindow& w = *b.w;
    DistortionChart* chart = w.charts()->distortion();
    chart->setFilter(QString());
    chart->setSort(DistortionSort::LayerOrder);
    chart->setMetric(DistortionMetric::OutputRelError);
    chart->setBarsPerView(DistortionChart::kDefaultView);
    chart->setFirstShownBar(0);
    w.modelPanel()->setGroupByKind(false);
    w.modelPanel()->selectByFilter(QStringLiteral("model.layers.*"), false);
    SensitivityHeatmap* map = w.charts()->sensitivity();
    map->setMeasurements(b.m224x4, quench::CostSource::Auto);
    map->setCandidate(QString());
    map->setFilter(QString());
    map->setFitRows(true);
    RateDistortionChart* rd = w.charts()->rateDistortion();
    rd->setMeasurements(b.m224x4);
    rd->setFilter(QString());
    rd->setMetric(RdMetric::Kl);
    w.charts()->allocation()->setMeasurements(b.m224x6, quench::CostSource::Auto);
    pump();
}

struct ViewCase {
    const char* name;
    std::function<QWidget*(Workbench&)> tab;  // the chart whose tab is in front; nullptr: the distortion tab
    std::function<void(Workbench&)> update;   // timed, with the events it posts and the repaint below
    std::function<void(Workbench&)> repaint;  // the repaint of what shows the update
    std::function<void(Workbench&)> reset;    // untimed, before each update: the view back where it was
};

void runViewCase(benchmark::State& state, const ViewCase& c) {
    Workbench* b = workbench();
    if (!b) {
        state.SkipWithError(qPrintable(g_setupError));
        return;
    }
    baseline(*b);
    QWidget* tab = c.tab ? c.tab(*b) : b->w->charts()->distortion();
    if (tab->window() == b->w.get()) b->w->charts()->showChart(tab);
    pump();
    double worst = 0;
    for (auto _ : state) {
        if (c.reset) c.reset(*b);
        pump();
        const auto t0 = std::chrono::steady_clock::now();
        c.update(*b);
        pump();
        c.repaint(*b);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        state.SetIterationTime(s);
        worst = std::max(worst, s);
    }
    state.counters["worst_ms"] = worst * 1e3;
    state.counters["target_ms"] = kTargetMs;
    state.SetLabel("target < 100 ms per update");
}

DistortionChart* distortion(Workbench& b) { return b.w->charts()->distortion(); }
QTreeWidget* tree(Workbench& b) { return b.w->modelPanel()->tree(); }
SensitivityHeatmap* heatmap(Workbench& b) { return b.w->charts()->sensitivity(); }
RateDistortionChart* rd(Workbench& b) { return b.w->charts()->rateDistortion(); }
AllocationView* allocation(Workbench& b) { return b.w->charts()->allocation(); }

// The slider positions test_allocation_export and test_charts move through, in turn.
int nextSliderPosition(Workbench& b) {
    static const int kPositions[] = {100, 400, 700, 950, 200};
    return kPositions[b.sliderMove++ % 5];
}

std::vector<ViewCase> viewCases() {
    auto repaintWindow = [](Workbench& b) { b.w->repaint(); };
    auto repaintDistortion = [](Workbench& b) { distortion(b)->repaint(); };
    auto repaintTree = [](Workbench& b) { tree(b)->repaint(); };
    auto repaintHeatmap = [](Workbench& b) { heatmap(b)->repaint(); };
    auto repaintRd = [](Workbench& b) { rd(b)->repaint(); };
    auto heatmapTab = [](Workbench& b) -> QWidget* { return heatmap(b); };
    auto rdTab = [](Workbench& b) -> QWidget* { return rd(b); };
    return {
        // Distortion chart, 224 bars.
        {"distortion/new_results", nullptr, [](Workbench& b) { emit b.w->session()->quantized(); }, repaintWindow, nullptr},
        {"distortion/scroll", nullptr, [](Workbench& b) { distortion(b)->setFirstShownBar(100); }, repaintDistortion,
         [](Workbench& b) { distortion(b)->setFirstShownBar(0); }},
        {"distortion/metric", nullptr, [](Workbench& b) { distortion(b)->setMetric(DistortionMetric::SqnrDb); },
         repaintDistortion, [](Workbench& b) { distortion(b)->setMetric(DistortionMetric::OutputRelError); }},
        {"distortion/sort_by_kind", nullptr, [](Workbench& b) { distortion(b)->setSort(DistortionSort::Kind); },
         repaintDistortion, [](Workbench& b) { distortion(b)->setSort(DistortionSort::LayerOrder); }},
        {"distortion/sort_worst_first", nullptr, [](Workbench& b) { distortion(b)->setSort(DistortionSort::Value); },
         repaintDistortion, [](Workbench& b) { distortion(b)->setSort(DistortionSort::Kind); }},
        {"distortion/all_224_bars", nullptr, [](Workbench& b) { distortion(b)->setBarsPerView(0); }, repaintDistortion,
         [](Workbench& b) { distortion(b)->setBarsPerView(DistortionChart::kDefaultView); }},
        {"distortion/filter", nullptr, [](Workbench& b) { distortion(b)->setFilter(QStringLiteral("down")); },
         repaintDistortion, [](Workbench& b) { distortion(b)->setFilter(QString()); }},
        // Layer tree, 224 layers in 32 blocks.
        {"tree/select_224_by_filter", nullptr,
         [](Workbench& b) { b.w->modelPanel()->selectByFilter(QStringLiteral("model.layers.*"), false); }, repaintTree,
         [](Workbench& b) { b.w->modelPanel()->setSelectedLayers({}); }},
        {"tree/group_by_kind", nullptr, [](Workbench& b) { b.w->modelPanel()->setGroupByKind(true); }, repaintTree,
         [](Workbench& b) { b.w->modelPanel()->setGroupByKind(false); }},
        {"tree/group_by_block", nullptr, [](Workbench& b) { b.w->modelPanel()->setGroupByKind(false); }, repaintTree,
         [](Workbench& b) { b.w->modelPanel()->setGroupByKind(true); }},
        // Every view that follows the model: the tree rebuilt, the panels, the distortion chart.
        {"window/model_loaded", nullptr, [](Workbench& b) { emit b.w->session()->modelLoaded(); }, repaintWindow, nullptr},
        // Sensitivity heatmap, 224 layers x 4 settings.
        {"heatmap/new_measurements", heatmapTab,
         [](Workbench& b) { heatmap(b)->setMeasurements(b.m224x4, quench::CostSource::Auto); }, repaintWindow, nullptr},
        {"heatmap/candidate", heatmapTab, [](Workbench& b) { heatmap(b)->setCandidate(heatmap(b)->candidates().first()); },
         repaintHeatmap, [](Workbench& b) { heatmap(b)->setCandidate(QString()); }},
        {"heatmap/filter", heatmapTab, [](Workbench& b) { heatmap(b)->setFilter(QStringLiteral("1*")); }, repaintHeatmap,
         [](Workbench& b) { heatmap(b)->setFilter(QString()); }},
        {"heatmap/one_line_per_row", heatmapTab, [](Workbench& b) { heatmap(b)->setFitRows(false); }, repaintHeatmap,
         [](Workbench& b) { heatmap(b)->setFitRows(true); }},
        // Rate-distortion, 224 layers x 4 settings.
        {"rate_distortion/new_measurements", rdTab, [](Workbench& b) { rd(b)->setMeasurements(b.m224x4); }, repaintWindow,
         nullptr},
        {"rate_distortion/filter_and_plot_shown", rdTab,
         [](Workbench& b) {
             rd(b)->setFilter(QStringLiteral("down"));
             rd(b)->plotShown();
         },
         repaintRd,
         [](Workbench& b) {
             rd(b)->setFilter(QString());
             rd(b)->setLayers({});
         }},
        {"rate_distortion/metric", rdTab, [](Workbench& b) { rd(b)->setMetric(RdMetric::OutputRelError); }, repaintRd,
         [](Workbench& b) { rd(b)->setMetric(RdMetric::Kl); }},
        // Allocation tab, 224 layers x 6 settings: a slider move re-solves and redraws both bar charts.
        {"allocation/slider_move_224_layers", [](Workbench& b) -> QWidget* { return allocation(b); },
         [](Workbench& b) { allocation(b)->slider()->setValue(nextSliderPosition(b)); },
         [](Workbench& b) {
             allocation(b)->barPlot()->repaint();
             allocation(b)->blockPlot()->repaint();
         },
         nullptr},
        // A standalone allocation view at 1001 layers (143 blocks, more than a 70B model's 560) x 7 settings.
        {"allocation/slider_move_1001_layers", [](Workbench& b) -> QWidget* { return b.alloc1001.get(); },
         [](Workbench& b) { b.alloc1001->slider()->setValue(nextSliderPosition(b)); },
         [](Workbench& b) {
             b.alloc1001->barPlot()->repaint();
             b.alloc1001->blockPlot()->repaint();
         },
         nullptr},
        // Tokens tab: 2000 evaluated tokens coloured by KL, as ChartTabs::refreshKl builds it.
        {"token_kl/2000_tokens", [](Workbench& b) -> QWidget* { return b.w->charts()->tokenKl(); },
         [](Workbench& b) {
             b.w->charts()->tokenKl()->setTokens(TokenKlView::tokenPieces(*b.tok, b.klIds), b.klIds, b.kl);
         },
         [](Workbench& b) { b.w->charts()->tokenKl()->repaint(); }, nullptr},
    };
}

// How late a 10 ms GUI timer fires while a job reports progress as fast as it can for 600 ms (the job runner
// coalesces reports so that the flood cannot hold up the event loop). Manual time: the worst gap between two
// ticks; the target is the same 100 ms as a view update.
void BM_JobRunnerEventLoopGap(benchmark::State& state) {
    double worstOfRun = 0;
    for (auto _ : state) {
        JobRunner job(QStringLiteral("busy"), [](quench::ProgressSink& p) {
            QElapsedTimer t;
            t.start();
            volatile double x = 0;
            while (t.elapsed() < 600) {
                for (int i = 0; i < 1000; ++i) x = x + i;
                p.report(double(t.elapsed()) / 600.0, "spinning");
            }
        });
        QElapsedTimer gap;
        qint64 worstNs = 0;
        QTimer tick;
        tick.setInterval(10);
        QObject::connect(&tick, &QTimer::timeout, [&] {
            worstNs = std::max(worstNs, gap.nsecsElapsed());
            gap.restart();
        });
        gap.start();
        tick.start();
        job.start();
        job.waitForEnd(60000);
        tick.stop();
        state.SetIterationTime(double(worstNs) * 1e-9);
        worstOfRun = std::max(worstOfRun, double(worstNs) * 1e-6);
    }
    state.counters["worst_ms"] = worstOfRun;
    state.counters["target_ms"] = kTargetMs;
    state.SetLabel("worst 10 ms-timer gap per 600 ms job; target < 100 ms");
}

}  // namespace

int main(int argc, char** argv) {
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    QApplication app(argc, argv);
    // Settings of their own, cleared: no window layout or candidates left from a run of the app or a test.
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("QuenchBench"));
    QCoreApplication::setApplicationName(QStringLiteral("QuenchBench"));
    QSettings().clear();
    at::set_num_threads(2);  // as the widget tests run the setup's quantize job
    benchmark::AddCustomContext("qt_platform", QGuiApplication::platformName().toStdString());

    static const std::vector<ViewCase> cases = viewCases();
    for (const ViewCase& c : cases)
        benchmark::RegisterBenchmark(c.name, [&c](benchmark::State& s) { runViewCase(s, c); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("job_runner/event_loop_gap", BM_JobRunnerEventLoopGap)
        ->UseManualTime()
        ->Iterations(5)
        ->Unit(benchmark::kMillisecond);

    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    g_bench.reset();  // the windows before the application
    QSettings().clear();
    return 0;
}
