// The chart widgets hold exactly the numbers core computed: real RTN results of the tiny model for the
// distortion bars, the histogram and the per-token view, hand-built Measurements for the sensitivity,
// rate-distortion and allocation charts (whose re-solves are compared with AllocationProblem itself).
// Every chart is also saved as a PNG next to the test binary (chart_png/) for a reviewer to look at.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QDir>
#include <QDoubleSpinBox>
#include <QSignalSpy>
#include <QSlider>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtTest>

#include <cmath>
#include <memory>

#include "alloc/allocation_problem.h"
#include "jobs/sensitivity.h"
#include "analysis/text_data.h"
#include <QHelpEvent>
#include <QTextBrowser>
#include <QTextCursor>
#include <QToolTip>

#include "analysis/model_eval.h"
#include "charts/allocation_view.h"
#include "charts/chart_style.h"
#include "charts/distortion_chart.h"
#include "charts/layer_bar_plot.h"
#include "charts/rate_distortion_chart.h"
#include "charts/sensitivity_heatmap.h"
#include "charts/token_kl_view.h"
#include "charts/training_curves.h"
#include "charts/weight_histogram.h"
#include "quant/quantized_tensor.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "quant/codec_spec.h"
#include "jobs/model_quantizer.h"
#include "synthetic_measurements.h"

using namespace quench;
using namespace quench::gui;

namespace {

const std::string kModelDir = std::string(QUENCH_SHARED_DATA) + "/tinystories-656k";

// Saves the widget at a legible size for a reviewer; returns false when the PNG could not be written.
bool savePng(QWidget& w, const QString& name, QSize size = QSize(1100, 600)) {
    w.resize(size);
    w.show();
    QCoreApplication::processEvents();
    const QString dir = QCoreApplication::applicationDirPath() + QStringLiteral("/chart_png");
    QDir().mkpath(dir);
    return w.grab().save(dir + QLatin1Char('/') + name + QStringLiteral(".png"));
}

}  // namespace

class TestCharts : public QObject {
    Q_OBJECT

    std::unique_ptr<LlamaModel> model_;
    std::unique_ptr<Tokenizer> tok_;
    QuantizeResult rtn_;  // RTN 4-bit and 3-bit on two layers of the real tiny model (weights replaced)

private slots:
    void initTestCase() {
        torch::set_num_threads(2);
        model_ = LlamaModel::load(kModelDir);
        tok_ = load_tokenizer(kModelDir);
        const auto calib = tokenize_text_file(
            *tok_, std::string(QUENCH_SHARED_DATA) + "/tinystories-valid/tinystories_val.train.txt", true, 2048);
        QuantizeOptions o;
        o.capture.ctx = 128;
        o.capture.sample_rows = 128;
        const auto layers = model_->layers().select_glob("model.layers.0.self_attn.q_proj,model.layers.0.mlp.down_proj");
        std::vector<LayerPlan> plan = {{layers[0], CodecSpec::parse("rtn:b=4,g=32,sym")},
                                       {layers[1], CodecSpec::parse("rtn:b=3,g=32")}};
        rtn_ = quantize_model_layers(*model_, plan, calib, o);
        QCOMPARE(rtn_.layers.size(), size_t(2));
    }

    void distortionBarsHoldCoreValues() {
        DistortionChart chart;
        chart.setResults(rtn_.layers);
        QVERIFY(!chart.showsNoData());
        QCOMPARE(chart.barCount(), 2);
        for (int i = 0; i < 2; ++i) {
            const auto& r = rtn_.layers[size_t(i)];
            QCOMPARE(chart.barLabel(i), QString::fromStdString(r.name));
            QCOMPARE(chart.barCodec(i), QStringLiteral("rtn"));
            QVERIFY(r.metrics.output_rel_error > 0);
            QCOMPARE(chart.barValue(i), r.metrics.output_rel_error);
        }
        chart.setMetric(DistortionMetric::SqnrDb);
        QCOMPARE(chart.barValue(0), rtn_.layers[0].metrics.sqnr_db);
        chart.setMetric(DistortionMetric::WeightMse);
        QCOMPARE(chart.barValue(1), rtn_.layers[1].metrics.weight_mse);
        chart.setMetric(DistortionMetric::WeightRelFro);
        QCOMPARE(chart.barValue(1), rtn_.layers[1].metrics.rel_fro_error);
        QVERIFY(chart.barToolTip(0).contains(QStringLiteral("Frobenius")));
        QVERIFY(chart.barToolTip(0).contains(QString::fromStdString(rtn_.layers[0].spec.to_string())));
        QVERIFY(savePng(chart, QStringLiteral("distortion_chart")));
    }

    void distortionSortsWorstFirst() {
        // The 3-bit layer has the larger error and the lower SQNR: worst first puts it first for both.
        DistortionChart chart;
        chart.setResults(rtn_.layers);
        const QString threeBit = QString::fromStdString(rtn_.layers[1].name);
        chart.setSort(DistortionSort::Value);
        chart.setMetric(DistortionMetric::WeightRelFro);
        QCOMPARE(chart.barLabel(0), threeBit);
        QVERIFY(chart.barValue(0) >= chart.barValue(1));
        chart.setMetric(DistortionMetric::SqnrDb);
        QCOMPARE(chart.barLabel(0), threeBit);
        QVERIFY(chart.barValue(0) <= chart.barValue(1));
        chart.setSort(DistortionSort::LayerOrder);
        QCOMPARE(chart.barLabel(0), QString::fromStdString(rtn_.layers[0].name));
    }

    void distortionEmptyAndMissingValues() {
        DistortionChart chart;
        QVERIFY(chart.showsNoData());
        QCOMPARE(chart.barCount(), 0);
        QVERIFY(savePng(chart, QStringLiteral("distortion_chart_empty"), QSize(500, 300)));
        auto results = rtn_.layers;
        results[0].metrics.output_rel_error = -1;  // no calibration inputs
        chart.setResults(results);
        chart.setSort(DistortionSort::Value);
        QCOMPARE(chart.barCount(), 2);
        QVERIFY(std::isnan(chart.barValue(1)));  // unknown sorts last
        chart.setResults({});
        QVERIFY(chart.showsNoData());
    }

    void allocationSliderResolvesLikeCore() {
        const Measurements m = test::syntheticMeasurements(4, {2, 3, 4, 5, 6, 8});
        const AllocationSpec spec = to_allocation_spec(m, CostSource::Auto);
        const AllocationProblem problem(spec);
        AllocationView view;
        QSignalSpy changed(&view, &AllocationView::allocationChanged);
        view.setSpec(spec);
        QVERIFY(view.hasAllocation());
        QCOMPARE(changed.count(), 1);
        QCOMPARE(view.minBitsPerWeight(), problem.min_bits_per_weight());
        QCOMPARE(view.maxBitsPerWeight(), problem.max_useful_bits_per_weight());

        view.setBudgetBitsPerWeight(4.1);
        const Allocation expect = problem.solve_lagrangian(Budget::bits_per_weight(4.1));
        const Allocation& got = view.allocation();
        QCOMPARE(got.total_bits, expect.total_bits);
        QCOMPARE(got.total_cost, expect.total_cost);
        QCOMPARE(view.barCount(), int(spec.layers.size()));
        for (size_t i = 0; i < expect.layers.size(); ++i) {
            QCOMPARE(got.layers[i].spec, expect.layers[i].spec);
            QCOMPARE(view.barBitsPerWeight(int(i)), expect.layers[i].bits_per_weight);
            QCOMPARE(view.barCodec(int(i)), QString::fromStdString(expect.layers[i].spec.substr(0, expect.layers[i].spec.find(':'))));
        }

        // A slider move re-solves at the slider's budget; the spin box follows.
        const double before = got.total_cost;
        view.slider()->setValue(view.slider()->maximum() / 5);
        const double bpw = view.budgetBitsPerWeight();
        QVERIFY(bpw < 4.1);
        const Allocation low = problem.solve_lagrangian(Budget::bits_per_weight(bpw));
        QCOMPARE(view.allocation().total_bits, low.total_bits);
        QVERIFY(view.allocation().total_cost > before);
        QCOMPARE(view.spinBox()->value(), std::round(bpw * 1000) / 1000);
        QCOMPARE(changed.count(), 3);
        QCOMPARE(changed.last().at(0).value<Allocation>().total_bits, low.total_bits);
        QVERIFY(view.message().isEmpty());
        QVERIFY(savePng(view, QStringLiteral("allocation_view")));
    }

    void allocationUnitsConstraintsAndInfeasible() {
        const Measurements m = test::syntheticMeasurements(2, {2, 3, 4, 8});
        AllocationView view;
        view.setMeasurements(m, CostSource::Auto);
        const AllocationProblem problem(to_allocation_spec(m, CostSource::Auto));
        // MiB: the spin box shows the budget in MiB (2^20 bytes) and a bytes budget solves as core does.
        view.setBudgetUnit(BudgetUnit::Megabytes);
        const double bytes = 4.0 * double(problem.total_weights()) / 8.0;
        view.setBudgetBytes(bytes);
        QCOMPARE(view.allocation().total_bits, problem.solve_lagrangian(Budget::bytes(bytes)).total_bits);
        QCOMPARE(view.spinBox()->value(), std::round(bytes / 1048576.0 * 1000) / 1000);
        QVERIFY(std::abs(view.budgetBitsPerWeight() - 4.0) < 1e-12);

        // A budget below the cheapest allocation: an inline message, no allocation, no exception.
        view.setBudgetUnit(BudgetUnit::BitsPerWeight);
        view.setBudgetBitsPerWeight(1.0);
        QVERIFY(!view.hasAllocation());
        QVERIFY(view.message().contains(QStringLiteral("below")));
        QVERIFY(savePng(view, QStringLiteral("allocation_view_infeasible"), QSize(900, 400)));
        view.setBudgetBitsPerWeight(4.0);
        QVERIFY(view.hasAllocation());
        QVERIFY(view.message().isEmpty());

        // A pin from the layer tree: that layer takes its spec whatever the budget.
        AllocConstraints c;
        const std::string pinned = m.layers()[3].name;
        const std::string spec8 = CodecSpec::parse("gptq:b=8,g=32").to_string();
        c.pins[pinned] = spec8;
        view.setConstraints(c);
        QVERIFY(view.hasAllocation());
        QCOMPARE(view.allocation().layers[3].spec, spec8);
        QVERIFY(view.allocation().layers[3].pinned);
        QVERIFY(view.minBitsPerWeight() > problem.min_bits_per_weight());
        // A pin to a spec the layer has no candidate for: core's error, inline.
        c.pins[pinned] = "rtn:b=7";
        view.setConstraints(c);
        QVERIFY(!view.hasAllocation());
        QVERIFY(!view.message().isEmpty());
        view.setBudgetBitsPerWeight(3.0);  // no problem: nothing to solve, no crash
        QVERIFY(!view.hasAllocation());
    }

    void allocationEmpty() {
        AllocationView view;
        QVERIFY(!view.hasAllocation());
        QVERIFY(view.message().contains(QStringLiteral("No data")));
        view.setBudgetBitsPerWeight(3.0);
        view.setMeasurements(Measurements(), CostSource::Auto);
        QVERIFY(!view.hasAllocation());
        QVERIFY(!view.message().isEmpty());
        QVERIFY(savePng(view, QStringLiteral("allocation_view_empty"), QSize(500, 300)));
    }

    void allocationSliderMovesAt1001Layers() {
        // 143 blocks x 7 kinds = 1001 layers (a 70B model has 560), 7 candidates each: every slider move
        // re-solves as core solves it and redraws the bars. The time per move (< 100 ms) is measured by
        // tests/bench/bench_views (allocation/slider_move_1001_layers).
        const Measurements m = test::syntheticMeasurements(143, {2, 3, 4, 5, 6, 7, 8});
        AllocationView view;
        view.setMeasurements(m, CostSource::Auto);
        view.resize(1280, 700);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QCOMPARE(view.barCount(), 1001);
        const AllocationProblem problem(to_allocation_spec(m, CostSource::Auto));
        for (int pos : {100, 400, 700, 950, 200}) {
            view.slider()->setValue(pos);
            QCoreApplication::processEvents();
            view.barPlot()->repaint();  // the chart drawn with the new bars
            QVERIFY(view.hasAllocation());
            QCOMPARE(view.allocation().layers.size(), std::size_t(1001));
            QCOMPARE(view.allocation().total_bits,
                     problem.solve_lagrangian(Budget::bits_per_weight(view.budgetBitsPerWeight())).total_bits);
        }
    }
    void heatmapCellsAreTheMeasuredKl() {
        Measurements m = test::syntheticMeasurements(3, {2, 3, 4, 8});
        SensitivityLayer head{"lm_head", "lm_head", -1, 512, 128};
        m.add_layer(head);
        SensitivityPoint hp;
        hp.layer = "lm_head";
        hp.spec = CodecSpec::parse("rtn:b=2,g=32").to_string();
        hp.bits_per_weight = 2.5;
        hp.has_kl = true;
        hp.kl = 0.5;
        m.set(hp);
        SensitivityHeatmap map;
        map.setMeasurements(m);
        QCOMPARE(map.rowCount(), 4);  // blocks 0..2, then "other" for lm_head
        QCOMPARE(map.columnCount(), 8);
        QCOMPARE(map.columnLabel(0), QStringLiteral("q"));
        QCOMPARE(map.columnLabel(6), QStringLiteral("down"));
        QCOMPARE(map.columnLabel(7), QStringLiteral("lm_head"));
        QCOMPARE(map.rowLabel(3), QStringLiteral("other"));
        QCOMPARE(map.candidates().size(), 4);
        QVERIFY(std::isnan(map.cellValue(0, 7)));  // no lm_head in block 0
        QCOMPARE(map.cellLayer(3, 7), QStringLiteral("lm_head"));

        const std::string b2 = CodecSpec::parse("rtn:b=2,g=32").to_string();
        const std::string b3 = CodecSpec::parse("rtn:b=3,g=32").to_string();
        map.setCandidate(QString::fromStdString(b2));  // measured KL
        QCOMPARE(map.cellValue(1, 6), m.find("model.layers.1.mlp.down_proj", b2)->kl);
        QCOMPARE(map.cellValue(3, 7), 0.5);
        map.setCandidate(QString::fromStdString(b3));  // proxy only
        QCOMPARE(map.cellValue(2, 0), m.find("model.layers.2.self_attn.q_proj", b3)->proxy_kl);
        QVERIFY(map.cellToolTip(2, 0).contains(QStringLiteral("proxy")));
        QVERIFY(std::isnan(map.cellValue(3, 7)));  // lm_head was not measured at 3 bits
        // The most sensitive cell has the top colour of the scale, the least the bottom one.
        QCOMPARE(map.cellColor(2, 6), scaleColor(1.0));
        QCOMPARE(map.cellColor(0, 1), scaleColor(0.0));

        map.setCandidate(QString());  // mean over candidates, measured where there is a measurement
        double sum = 0;
        for (const SensitivityPoint* p : m.points_of("model.layers.0.self_attn.v_proj")) sum += p->has_kl ? p->kl : p->proxy_kl;
        QCOMPARE(map.cellValue(0, 2), sum / 4);
        QVERIFY(savePng(map, QStringLiteral("sensitivity_heatmap"), QSize(900, 500)));

        map.setMeasurements(m, CostSource::Kl);
        map.setCandidate(QString::fromStdString(b3));
        QVERIFY(std::isnan(map.cellValue(0, 0)));  // no measured KL at 3 bits
        map.setMeasurements(Measurements());
        QVERIFY(map.showsNoData());
        QCOMPARE(map.rowCount(), 0);
        QVERIFY(savePng(map, QStringLiteral("sensitivity_heatmap_empty"), QSize(500, 300)));
    }

    void rateDistortionSeriesAreTheMeasuredPoints() {
        const Measurements m = test::syntheticMeasurements(2, {4, 2, 8, 3});  // not in bits order
        RateDistortionChart chart;
        chart.setMeasurements(m);
        QCOMPARE(chart.seriesCount(), RateDistortionChart::kDefaultLayers);
        const QString down = QStringLiteral("model.layers.1.mlp.down_proj"), k = QStringLiteral("model.layers.0.self_attn.k_proj");
        chart.setLayers({down, k, QStringLiteral("no.such.layer")});
        QCOMPARE(chart.seriesCount(), 2);
        QCOMPARE(chart.seriesName(0), down);
        const auto pts = chart.seriesPoints(0);
        QCOMPARE(pts.size(), size_t(4));
        for (size_t i = 0; i < pts.size(); ++i) {
            const SensitivityPoint* p = m.find(down.toStdString(), chart.seriesSpecs(0)[int(i)].toStdString());
            QVERIFY(p);
            QCOMPARE(pts[i].x(), p->bits_per_weight);
            QCOMPARE(pts[i].y(), p->has_kl ? p->kl : p->proxy_kl);
            if (i) QVERIFY(pts[i].x() > pts[i - 1].x());
        }
        chart.setMetric(RdMetric::OutputRelError);
        QCOMPARE(chart.seriesPoints(1)[0].y(), m.find(k.toStdString(), chart.seriesSpecs(1)[0].toStdString())->output_rel_error);
        chart.setMetric(RdMetric::Kl);
        chart.setLayers({down, k, QStringLiteral("model.layers.0.mlp.up_proj"), QStringLiteral("model.layers.1.self_attn.q_proj")});
        QVERIFY(savePng(chart, QStringLiteral("rate_distortion_chart")));
        chart.setMeasurements(Measurements());
        QVERIFY(chart.showsNoData());
        QCOMPARE(chart.seriesCount(), 0);
    }

    void histogramCountsWeightsAndShowsTheGrid() {
        // Layer 0 was quantized with rtn:b=4,g=32,sym: levels k·s, k in [-8, 7], s = row 0 group 0's scale.
        const size_t layer = rtn_.layers[0].layer;
        const at::Tensor W = model_->original_weight(layer).contiguous();
        const std::vector<float> w(W.data_ptr<float>(), W.data_ptr<float>() + W.numel());
        const double s = rtn_.tensors.at(layer).part("scales").data.to(torch::kFloat32)[0][0].item<double>();
        std::vector<double> levels;
        for (int k = -8; k <= 7; ++k) levels.push_back(k * s);
        WeightHistogram h;
        QVERIFY(h.showsNoData());
        // One group's weights: the dequantized ones all sit on the levels.
        const at::Tensor dq = model_->weight(layer)[0].slice(0, 0, 32).contiguous();
        for (int64_t i = 0; i < 32; ++i) {
            const double v = dq[i].item<double>();
            QVERIFY(std::any_of(levels.begin(), levels.end(), [&](double l) { return std::abs(l - v) <= 1e-6 * s; }));
        }
        h.setWeights(w, 64);
        h.setLevels(levels);
        h.setTitle(QString::fromStdString(rtn_.layers[0].name) + QStringLiteral(": levels of row 0, group 0"));
        QCOMPARE(h.weightCount(), w.size());
        QCOMPARE(h.binCount(), 64);
        QCOMPARE(h.levelCount(), 16);
        QCOMPARE(h.level(0), -8 * s);
        int64_t total = 0;
        for (int i = 0; i < h.binCount(); ++i) total += h.binHits(i);
        QCOMPARE(total, int64_t(w.size()));
        const int64_t inFirst = std::count_if(w.begin(), w.end(), [&](float v) { return v >= h.binLow(0) && v < h.binHigh(0); });
        QCOMPARE(h.binHits(0), inFirst);
        QCOMPARE(h.binLow(0), double(*std::min_element(w.begin(), w.end())));
        QVERIFY(savePng(h, QStringLiteral("weight_histogram")));
        h.setWeights(nullptr, 0);
        QVERIFY(h.showsNoData());
        QCOMPARE(h.binCount(), 0);
    }

    void trainingCurvesBatchRepaints() {
        TrainingCurves c;
        QVERIFY(c.showsNoData());
        c.resize(900, 450);
        c.show();
        for (int step = 1; step <= 2000; ++step) c.appendPoint(step, 3.0 / std::sqrt(double(step)));
        for (int step = 250; step <= 2000; step += 250) c.appendKl(step, 0.2 / std::sqrt(double(step)));
        QCOMPARE(c.lossPointCount(), 0);  // nothing applied point by point
        QCOMPARE(c.pendingCount(), 2008);
        QTRY_COMPARE_WITH_TIMEOUT(c.lossPointCount(), 2000, 1000);
        QCOMPARE(c.updateCount(), 1);  // 2,008 points, one chart update
        QCOMPARE(c.klPointCount(), 8);
        QCOMPARE(c.klPoint(3), QPointF(1000, 0.2 / std::sqrt(1000.0)));
        QCOMPARE(c.lossPoint(99), QPointF(100, 0.3));
        c.appendPoint(2001, std::nan(""));  // dropped
        c.flush();
        QCOMPARE(c.lossPointCount(), 2000);
        QVERIFY(savePng(c, QStringLiteral("training_curves"), QSize(900, 450)));
        c.clear();
        QVERIFY(c.showsNoData());
        QCOMPARE(c.lossPointCount(), 0);
    }

    void tokenKlViewColoursTheRealKl() {
        // The real per-token KL of the two quantized layers against full precision on a short text.
        const std::vector<int32_t> ids = tok_->encode("Once upon a time, there was a little girl named Lily. She liked "
                                                      "to play outside in the park with her dog.\nOne day it rained.");
        EvalOptions o;
        o.ctx = int64_t(ids.size());
        const KlReport r = evaluate_kl({model_.get(), LlamaModel::Weights::Original}, {model_.get()}, ids, o, tok_->bos_id());
        QVERIFY(!r.per_token_kl.empty());
        TokenKlView view;
        QVERIFY(view.showsNoData());
        const auto kl = TokenKlView::alignKl(r, ids.size());
        const auto pieces = TokenKlView::tokenPieces(*tok_, ids);
        view.setTokens(pieces, ids, kl);
        QCOMPARE(view.tokenCount(), int(ids.size()));
        size_t hottest = 0;
        for (size_t j = 0; j < r.per_token_kl.size(); ++j) {
            const int t = int(r.first_scored_token + int64_t(j));
            QCOMPARE(view.tokenKl(t), double(r.per_token_kl[j]));
            if (r.per_token_kl[j] > r.per_token_kl[hottest]) hottest = j;
        }
        QVERIFY(std::isnan(view.tokenKl(0)));  // BOS is not predicted
        QCOMPARE(view.tokenColor(0), view.palette().color(QPalette::Base));
        // Colour intensity grows with KL: the hottest token is furthest from the base colour.
        const int hot = int(r.first_scored_token + int64_t(hottest));
        auto dist = [&](QColor c) {
            const QColor b = view.palette().color(QPalette::Base);
            return std::abs(c.red() - b.red()) + std::abs(c.green() - b.green()) + std::abs(c.blue() - b.blue());
        };
        for (int t = 0; t < view.tokenCount(); ++t) QVERIFY(dist(view.tokenColor(t)) <= dist(view.tokenColor(hot)));
        QVERIFY(view.tokenToolTip(hot).contains(QStringLiteral("id %1").arg(ids[size_t(hot)])));
        // The text is the pieces in order, and positions map back to their token.
        QString text;
        for (const auto& p : pieces) text += QString::fromStdString(p);
        QCOMPARE(view.browser()->toPlainText(), text);
        QVERIFY(text.contains(QStringLiteral(" upon a time")));
        QCOMPARE(view.tokenAtPosition(text.indexOf(QStringLiteral("Lily")) + 1),
                 int(std::find_if(pieces.begin(), pieces.end(), [](auto& p) { return p.find("Lily") != std::string::npos ||
                                                                                      p.find("Li") != std::string::npos; }) -
                     pieces.begin()));
        QVERIFY(savePng(view, QStringLiteral("token_kl_view"), QSize(800, 300)));
        view.setTokens({"a"}, {1, 2}, {0.1f});  // mismatched sizes: message, no crash
        QVERIFY(view.showsNoData());
        view.setTokens({}, {}, {});
        QVERIFY(view.showsNoData());
    }
    void darkPaletteRenders() {
        // The charts take their colours from the palette: a dark one must switch backgrounds and text.
        QPalette dark;
        dark.setColor(QPalette::Window, QColor(0x2b, 0x2b, 0x2b));
        dark.setColor(QPalette::Base, QColor(0x1e, 0x1e, 0x1e));
        dark.setColor(QPalette::WindowText, QColor(0xe6, 0xe6, 0xe6));
        dark.setColor(QPalette::Text, QColor(0xe6, 0xe6, 0xe6));
        dark.setColor(QPalette::Mid, QColor(0x60, 0x60, 0x60));
        DistortionChart d;
        d.setResults(rtn_.layers);
        d.setPalette(dark);
        QCOMPARE(d.chartView()->chart()->backgroundBrush().color(), dark.color(QPalette::Base));
        QVERIFY(savePng(d, QStringLiteral("distortion_chart_dark"), QSize(800, 450)));
        AllocationView a;
        a.setPalette(dark);
        a.setMeasurements(test::syntheticMeasurements(4, {2, 3, 4, 8}), CostSource::Auto);
        QVERIFY(savePng(a, QStringLiteral("allocation_view_dark"), QSize(1000, 500)));
        TokenKlView t;
        t.setPalette(dark);
        const std::vector<int32_t> ids = tok_->encode("Tom had a big red ball.");
        std::vector<float> kl(ids.size());
        for (size_t i = 0; i < kl.size(); ++i) kl[i] = 0.02f * float(i);
        t.setTokens(TokenKlView::tokenPieces(*tok_, ids), ids, kl);
        QCOMPARE(t.tokenColor(0), dark.color(QPalette::Base));
        QVERIFY(savePng(t, QStringLiteral("token_kl_view_dark"), QSize(600, 200)));
    }
    void tooltipsNameTheHoveredItem() {
        // A tooltip event over a bar, a heatmap cell or a token shows that item's text.
        auto tipAt = [](QWidget* w, QPoint pos) {
            QHelpEvent e(QEvent::ToolTip, pos, w->mapToGlobal(pos));
            QCoreApplication::sendEvent(w, &e);
            return QToolTip::text();
        };
        AllocationView a;
        a.setMeasurements(test::syntheticMeasurements(1, {2, 4}), CostSource::Auto);
        a.resize(800, 400);
        a.show();
        QVERIFY(QTest::qWaitForWindowExposed(&a));
        LayerBarPlot* plot = a.barPlot();
        int last = -1;
        for (int x = 0; x < plot->width(); x += 5) {
            const int i = plot->barAt(QPoint(x, plot->height() / 2));
            if (i < 0) continue;
            QVERIFY(i >= last);
            last = i;
        }
        QCOMPARE(last, 6);
        const QPoint right(plot->width() - 15, plot->height() / 2);
        QCOMPARE(plot->barAt(right), 6);
        QVERIFY(tipAt(plot, right).contains(QStringLiteral("model.layers.0.mlp.down_proj")));

        SensitivityHeatmap map;
        map.setMeasurements(test::syntheticMeasurements(2, {2, 4}));
        map.resize(700, 400);
        map.show();
        QVERIFY(QTest::qWaitForWindowExposed(&map));
        QWidget* canvas = nullptr;
        for (QWidget* w : map.findChildren<QWidget*>())
            if (w->isVisible() && w->rect().width() > 400 && w->metaObject() == &QWidget::staticMetaObject) canvas = w;
        QVERIFY(canvas);
        // Bottom-right corner of the grid is block 1's down_proj (the legend is to the right of it).
        const QString tip = tipAt(canvas, QPoint(canvas->width() / 2, canvas->height() - 10));
        QVERIFY(tip.contains(QStringLiteral("model.layers.1.")));

        TokenKlView view;
        const std::vector<int32_t> ids = tok_->encode("Lily saw a cat.");
        view.setTokens(TokenKlView::tokenPieces(*tok_, ids), ids, std::vector<float>(ids.size(), 0.01f));
        view.resize(600, 200);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        const QRect first = view.browser()->cursorRect(QTextCursor(view.browser()->document()));
        const QString tokTip = tipAt(view.browser()->viewport(), first.center() + QPoint(3, 0));
        QVERIFY(tokTip.contains(QStringLiteral("id %1").arg(ids[0])));
    }
};

QTEST_MAIN(TestCharts)
#include "test_charts.moc"
