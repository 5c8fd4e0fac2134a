#include "distortion_chart.h"

#include <QComboBox>
#include <QCursor>
#include <QHBoxLayout>
#include <QLabel>
#include <QStackedLayout>
#include <QToolTip>
#include <QVBoxLayout>
#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSet>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QStackedBarSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "chart_style.h"

namespace quench::gui {

namespace {

}  // namespace

QString DistortionChart::metricName(DistortionMetric m) {
    switch (m) {
    case DistortionMetric::OutputRelError: return tr("output rel. error");
    case DistortionMetric::WeightRelFro: return tr("weight rel. Frobenius error");
    case DistortionMetric::SqnrDb: return tr("SQNR (dB)");
    case DistortionMetric::WeightMse: return tr("weight MSE");
    }
    return {};
}

QString DistortionChart::metricExplanation(DistortionMetric m) {
    switch (m) {
    case DistortionMetric::OutputRelError:
        return tr("Output relative error: ||X(W - W')^T||² / ||XW^T||² on calibration inputs X. "
                  "What the next layer sees; lower is better. Unknown without calibration data.");
    case DistortionMetric::WeightRelFro:
        return tr("Weight relative Frobenius error: ||W - W'||_F / ||W||_F. Lower is better.");
    case DistortionMetric::SqnrDb:
        return tr("Signal-to-quantization-noise ratio: 10·log10(||W||² / ||W - W'||²) in dB. "
                  "Higher is better; each extra bit adds about 6 dB.");
    case DistortionMetric::WeightMse:
        return tr("Weight mean squared error: mean (W - W')². Lower is better; depends on the weights' scale.");
    }
    return {};
}

DistortionChart::DistortionChart(QWidget* parent) : QWidget(parent) {
    metricBox_ = new QComboBox(this);
    for (auto m : {DistortionMetric::OutputRelError, DistortionMetric::WeightRelFro, DistortionMetric::SqnrDb,
                   DistortionMetric::WeightMse}) {
        metricBox_->addItem(metricName(m), int(m));
        metricBox_->setItemData(metricBox_->count() - 1, metricExplanation(m), Qt::ToolTipRole);
    }
    metricBox_->setToolTip(tr("Which per-layer distortion the bars show"));
    sortBox_ = new QComboBox(this);
    sortBox_->addItem(tr("layer order"), int(DistortionSort::LayerOrder));
    sortBox_->addItem(tr("worst first"), int(DistortionSort::Value));
    sortBox_->setToolTip(tr("Bars in the order the layers were quantized, or worst first"));
    connect(metricBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setMetric(DistortionMetric(metricBox_->itemData(i).toInt())); });
    connect(sortBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setSort(DistortionSort(sortBox_->itemData(i).toInt())); });

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Metric:"), this));
    controls->addWidget(metricBox_);
    controls->addSpacing(12);
    controls->addWidget(new QLabel(tr("Order:"), this));
    controls->addWidget(sortBox_);
    controls->addStretch(1);

    view_ = new QChartView(this);
    view_->setRenderHint(QPainter::Antialiasing);
    stack_ = noDataStack(view_, tr("No data: quantize some layers to see their distortion here."), this);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addLayout(stack_, 1);
    rebuild();
}

void DistortionChart::setResults(std::vector<LayerResult> results) {
    results_ = std::move(results);
    rebuild();
}

void DistortionChart::setMetric(DistortionMetric m) {
    if (m == metric_ && metricBox_->currentData().toInt() == int(m)) return;
    metric_ = m;
    metricBox_->setCurrentIndex(metricBox_->findData(int(m)));
    rebuild();
}

void DistortionChart::setSort(DistortionSort s) {
    if (s == sort_ && sortBox_->currentData().toInt() == int(s)) return;
    sort_ = s;
    sortBox_->setCurrentIndex(sortBox_->findData(int(s)));
    rebuild();
}

double DistortionChart::valueOf(const LayerResult& r) const {
    const LayerMetrics& m = r.metrics;
    switch (metric_) {
    case DistortionMetric::OutputRelError:
        return m.output_rel_error < 0 ? std::numeric_limits<double>::quiet_NaN() : m.output_rel_error;
    case DistortionMetric::WeightRelFro: return m.rel_fro_error;
    case DistortionMetric::SqnrDb: return m.sqnr_db;
    case DistortionMetric::WeightMse: return m.weight_mse;
    }
    return 0;
}

double DistortionChart::barValue(int i) const { return valueOf(barResult(i)); }
const LayerResult& DistortionChart::barResult(int i) const { return results_.at(size_t(order_.at(size_t(i)))); }
QString DistortionChart::barLabel(int i) const { return QString::fromStdString(barResult(i).name); }
QString DistortionChart::barCodec(int i) const { return QString::fromStdString(barResult(i).spec.codec()); }

QString DistortionChart::barToolTip(int i) const {
    const LayerResult& r = barResult(i);
    return tr("<b>%1</b><br>%2<br>%3: <b>%4</b><br>%5 bits/weight total (%6 code)<br><i>%7</i>")
        .arg(QString::fromStdString(r.name).toHtmlEscaped(), QString::fromStdString(r.spec.to_string()).toHtmlEscaped(),
             metricName(metric_), formatValue(barValue(i)), formatValue(r.metrics.total_bits_per_weight),
             formatValue(r.metrics.code_bits_per_weight), metricExplanation(metric_));
}

void DistortionChart::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) applyPalette(view_->chart(), palette());
}

void DistortionChart::rebuild() {
    order_.resize(results_.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = int(i);
    if (sort_ == DistortionSort::Value) {
        // Worst first; unknown values (NaN) last.
        const bool higherIsBetter = metric_ == DistortionMetric::SqnrDb;
        std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) {
            const double va = valueOf(results_[size_t(a)]), vb = valueOf(results_[size_t(b)]);
            if (std::isnan(va) || std::isnan(vb)) return !std::isnan(va) && std::isnan(vb);
            return higherIsBetter ? va < vb : va > vb;
        });
    }

    auto* chart = new QChart;
    chart->setAnimationOptions(QChart::NoAnimation);
    chart->legend()->setAlignment(Qt::AlignTop);
    // One set per codec, in order of first appearance; a bar has its value only in its codec's set, so the
    // stacked series draws one coloured bar per layer.
    std::vector<QString> codecs;
    for (int i = 0; i < barCount(); ++i)
        if (std::find(codecs.begin(), codecs.end(), barCodec(i)) == codecs.end()) codecs.push_back(barCodec(i));
    auto* series = new QStackedBarSeries;
    series->setBarWidth(0.8);
    for (const QString& codec : codecs) {
        auto* set = new QBarSet(codec);
        set->setColor(codecColor(codec));
        set->setBorderColor(codecColor(codec).darker(130));
        for (int i = 0; i < barCount(); ++i) {
            const double v = barValue(i);
            set->append(barCodec(i) == codec && std::isfinite(v) ? v : 0.0);
        }
        series->append(set);
    }
    chart->addSeries(series);

    QStringList categories;
    std::set<QString> seen;
    for (int i = 0; i < barCount(); ++i) {
        QString s = shortLayerName(barResult(i).name);
        if (!seen.insert(s).second) s = barLabel(i);  // categories must be unique
        categories << s;
    }
    auto* x = new QBarCategoryAxis;
    x->append(categories);
    x->setLabelsAngle(categories.size() > 8 ? -60 : 0);
    x->setLabelsVisible(categories.size() <= 64);  // beyond that, labels overlap: tooltips name the layers
    x->setTitleText(categories.size() <= 64 ? QString() : tr("%1 layers (hover for names)").arg(categories.size()));
    auto* y = new QValueAxis;
    y->setTitleText(metricName(metric_));
    double lo = 0, hi = 0;
    for (int i = 0; i < barCount(); ++i)
        if (std::isfinite(barValue(i))) lo = std::min(lo, barValue(i)), hi = std::max(hi, barValue(i));
    y->setRange(lo, hi > lo ? hi * 1.05 : lo + 1);
    y->applyNiceNumbers();
    y->setLabelFormat(hi > 0 && hi < 1e-2 ? QStringLiteral("%.1e") : QStringLiteral("%.3g"));
    chart->addAxis(x, Qt::AlignBottom);
    chart->addAxis(y, Qt::AlignLeft);
    series->attachAxis(x);
    series->attachAxis(y);
    connect(series, &QStackedBarSeries::hovered, this, [this](bool on, int index, QBarSet*) {
        if (on) QToolTip::showText(QCursor::pos(), barToolTip(index), view_);
        else QToolTip::hideText();
    });
    applyPalette(chart, palette());

    QChart* old = view_->chart();
    view_->setChart(chart);
    delete old;
    view_->setToolTip(metricExplanation(metric_));
    stack_->setCurrentIndex(results_.empty() ? 0 : 1);
}

}  // namespace quench::gui
