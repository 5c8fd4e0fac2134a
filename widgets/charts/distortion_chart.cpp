#include "distortion_chart.h"

#include <QComboBox>
#include <QCursor>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QScrollBar>
#include <QStackedLayout>
#include <QToolTip>
#include <QVBoxLayout>
#include <QWheelEvent>
#include <QtCharts/QBarSet>
#include <QtCharts/QCategoryAxis>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QStackedBarSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>
#include <limits>

#include "chart_style.h"

namespace quench::gui {

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
    sortBox_->addItem(tr("by kind"), int(DistortionSort::Kind));
    sortBox_->addItem(tr("worst first"), int(DistortionSort::Value));
    sortBox_->setToolTip(tr("Bars in the order the layers were quantized, grouped by kind (every q, then every k, "
                            "...), or worst first"));
    zoomBox_ = new QComboBox(this);
    zoomBox_->addItem(tr("all"), 0);
    for (int n : {7, 14, 28, 56, 112}) zoomBox_->addItem(QString::number(n), n);
    zoomBox_->setToolTip(tr("Bars per view; the scroll bar under the chart (or the mouse wheel over it) moves the "
                            "view, Ctrl+wheel zooms"));
    filter_ = new QLineEdit(this);
    filter_->setPlaceholderText(tr("filter: 3, down, 1*.q"));
    filter_->setClearButtonEnabled(true);
    filter_->setToolTip(tr("Show only matching layers: a block (3), a kind (down), a short name (3.down), a part of "
                           "the full name (mlp), or a wildcard (1*.q); several separated by commas"));
    connect(metricBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setMetric(DistortionMetric(metricBox_->itemData(i).toInt())); });
    connect(sortBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setSort(DistortionSort(sortBox_->itemData(i).toInt())); });
    connect(zoomBox_, qOverload<int>(&QComboBox::activated), this,
            [this](int i) { setBarsPerView(zoomBox_->itemData(i).toInt()); });
    connect(filter_, &QLineEdit::textChanged, this, [this] { rebuild(); });

    // Compact labels: the tab is about 600 px wide at 1280 x 800 with the docks open.
    auto* controls = new QHBoxLayout;
    controls->addWidget(metricBox_);
    controls->addWidget(sortBox_);
    controls->addWidget(new QLabel(tr("Show:"), this));
    controls->addWidget(zoomBox_);
    controls->addWidget(filter_, 1);

    chart_ = new QChart;
    chart_->setAnimationOptions(QChart::NoAnimation);
    chart_->legend()->setAlignment(Qt::AlignTop);
    series_ = new QStackedBarSeries;
    series_->setBarWidth(0.8);
    chart_->addSeries(series_);
    // One x axis whose categories are either the bars (short names) or their groups (blocks, kinds): a
    // QBarCategoryAxis would need a label per bar, and swapping axes leaves the old one's labels drawn.
    x_ = new QCategoryAxis;
    x_->setLabelsPosition(QCategoryAxis::AxisLabelsPositionCenter);
    y_ = new QValueAxis;
    chart_->addAxis(x_, Qt::AlignBottom);
    chart_->addAxis(y_, Qt::AlignLeft);
    series_->attachAxis(x_);
    series_->attachAxis(y_);
    connect(series_, &QStackedBarSeries::hovered, this, [this](bool on, int index, QBarSet*) {
        if (on && first_ + index < barCount()) QToolTip::showText(QCursor::pos(), barToolTip(first_ + index), view_);
        else QToolTip::hideText();
    });
    // A resize may give the names room, or take it: swap the axis when that changes.
    connect(chart_, &QChart::plotAreaChanged, this, [this] {
        if (namesFit() != namesShown_) updateAxis();
    });
    view_ = new QChartView(chart_, this);
    view_->setRenderHint(QPainter::Antialiasing);
    view_->viewport()->installEventFilter(this);
    hint_ = addHintOverlay(view_);
    scroll_ = new QScrollBar(Qt::Horizontal, this);
    scroll_->setToolTip(tr("Move the view along the layers"));
    connect(scroll_, &QScrollBar::valueChanged, this, [this](int v) {
        if (v == first_) return;
        first_ = v;
        redraw();
    });
    auto* page = new QWidget(this);
    auto* pageLayout = new QVBoxLayout(page);
    pageLayout->setContentsMargins(0, 0, 0, 0);
    pageLayout->setSpacing(0);
    pageLayout->addWidget(view_, 1);
    pageLayout->addWidget(scroll_);
    stack_ = noDataStack(page, tr("No data: quantize some layers (Method panel) to see their distortion here."), this);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addLayout(stack_, 1);
    applyPalette(chart_, palette());
    rebuild();
}

void DistortionChart::setResults(std::vector<LayerResult> results) {
    results_ = std::move(results);
    first_ = 0;
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

void DistortionChart::setFilter(const QString& text) { filter_->setText(text); }  // textChanged rebuilds
QString DistortionChart::filter() const { return filter_->text(); }

void DistortionChart::setBarsPerView(int n) {
    perView_ = std::max(0, n);
    redraw();
}

int DistortionChart::barsPerView() const {
    const int n = perView_ >= 0 ? perView_ : barCount() <= kAutoAll ? 0 : kDefaultView;
    return n >= barCount() ? 0 : n;
}

int DistortionChart::shownBarCount() const {
    const int n = barsPerView();
    return n == 0 ? barCount() : std::min(n, barCount() - first_);
}

void DistortionChart::setFirstShownBar(int i) { scroll_->setValue(i); }

QString DistortionChart::hint() const { return hint_->isHidden() ? QString() : hint_->text(); }

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
    if (e->type() == QEvent::PaletteChange) applyPalette(chart_, palette());
}

bool DistortionChart::eventFilter(QObject* watched, QEvent* e) {
    if (watched == view_->viewport() && e->type() == QEvent::Wheel) {
        const auto* we = static_cast<QWheelEvent*>(e);
        const int steps = we->angleDelta().y() / 120;
        if (steps == 0) return false;
        if (we->modifiers() & Qt::ControlModifier) {  // zoom: the next option of the Show box
            const int at = std::clamp(zoomBox_->findData(barsPerView()) + (steps > 0 ? 1 : -1), 0, zoomBox_->count() - 1);
            setBarsPerView(zoomBox_->itemData(at).toInt());
            return true;
        }
        if (!scroll_->isVisible()) return false;  // nothing to scroll: the page may scroll
        scroll_->setValue(scroll_->value() - steps * std::max(1, scroll_->pageStep() / 4));
        return true;
    }
    return QWidget::eventFilter(watched, e);
}

void DistortionChart::rebuild() {
    const LayerFilter filter(filter_->text());
    order_.clear();
    for (size_t i = 0; i < results_.size(); ++i)
        if (filter.matches(results_[i].name)) order_.push_back(int(i));
    if (sort_ == DistortionSort::Value) {
        // Worst first; unknown values (NaN) last.
        const bool higherIsBetter = metric_ == DistortionMetric::SqnrDb;
        std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) {
            const double va = valueOf(results_[size_t(a)]), vb = valueOf(results_[size_t(b)]);
            if (std::isnan(va) || std::isnan(vb)) return !std::isnan(va) && std::isnan(vb);
            return higherIsBetter ? va < vb : va > vb;
        });
    } else if (sort_ == DistortionSort::Kind) {
        std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) {
            return layerKindRank(results_[size_t(a)].name) < layerKindRank(results_[size_t(b)].name);
        });
    }

    // The scale and the legend cover every shown bar, not just the window: scrolling keeps them still.
    double lo = 0, hi = 0;
    bool any = false;
    codecs_.clear();
    for (int i = 0; i < barCount(); ++i) {
        if (!codecs_.contains(barCodec(i))) codecs_ << barCodec(i);
        const double v = barValue(i);
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), any = true;
    }
    y_->setTitleText(metricName(metric_));
    y_->setRange(lo, hi > lo ? hi * 1.05 : lo + 1);
    y_->applyNiceNumbers();
    y_->setLabelFormat(hi > 0 && hi < 1e-2 ? QStringLiteral("%.1e") : QStringLiteral("%.3g"));
    view_->setToolTip(metricExplanation(metric_));

    QString hint;
    if (!results_.empty() && order_.empty())
        hint = tr("No layer matches the filter '%1'.").arg(filter_->text());
    else if (!results_.empty() && !any && metric_ == DistortionMetric::OutputRelError)
        hint = tr("The output error needs a calibration text (Data panel): set one and quantize again, or pick "
                  "another metric above.");
    else if (!results_.empty() && !any)
        hint = tr("No %1 values for these layers.").arg(metricName(metric_));
    hint_->setText(hint);
    hint_->setVisible(!hint.isEmpty());
    stack_->setCurrentIndex(results_.empty() ? 0 : 1);
    redraw();
}

void DistortionChart::redraw() {
    const int perView = barsPerView();
    const int shown = perView == 0 ? barCount() : perView;
    {
        const QSignalBlocker block(scroll_);
        scroll_->setRange(0, std::max(0, barCount() - shown));
        scroll_->setPageStep(std::max(1, shown));
        scroll_->setSingleStep(1);
        scroll_->setVisible(barCount() > shown);
        first_ = std::clamp(first_, 0, scroll_->maximum());
        scroll_->setValue(first_);
    }
    {
        const QSignalBlocker block(zoomBox_);
        int at = zoomBox_->findData(perView);
        if (at < 0) {
            zoomBox_->addItem(QString::number(perView), perView);
            at = zoomBox_->count() - 1;
        }
        zoomBox_->setCurrentIndex(at);
    }
    // One set per codec, in legend order; a bar has its value only in its codec's set, so the stacked
    // series draws one coloured bar per layer. Only the window's bars exist as chart items.
    const int n = shownBarCount();
    QList<QBarSet*> sets;
    for (const QString& codec : codecs_) {
        auto* set = new QBarSet(codec);
        set->setColor(codecColor(codec));
        set->setBorderColor(codecColor(codec).darker(130));
        QList<qreal> values;
        values.reserve(n);
        for (int i = first_; i < first_ + n; ++i) {
            const double v = barValue(i);
            values << (barCodec(i) == codec && std::isfinite(v) ? v : 0.0);
        }
        set->append(values);
        sets << set;
    }
    series_->clear();
    series_->append(sets);

    updateAxis();
}

double DistortionChart::plotWidth() const {
    // Before the first layout the plot area is unknown: the view less the y axis.
    return chart_->plotArea().width() > 0 ? chart_->plotArea().width() : view_->width() - 100.0;
}

bool DistortionChart::namesFit() const {
    // A rotated name needs about a line of text plus the label item's margins across; Qt Charts elides
    // it to "..." in less.
    const int n = shownBarCount();
    return n > 0 && plotWidth() / n >= fontMetrics().height() + 10;
}

void DistortionChart::updateAxis() {
    // A name under each bar where each has room for a line of text. Otherwise the axis labels the runs of
    // bars of one block (layer order) or one kind (by kind) and the tooltips name the layers: a label per
    // bar costs Qt Charts a text item each, about 0.5 ms apiece, which 224 of them would spend on overlap.
    const int n = shownBarCount();
    const double plot = plotWidth();
    namesShown_ = namesFit();
    const QStringList old = x_->categoriesLabels();
    for (const QString& label : old) x_->remove(label);
    x_->setStartValue(-0.5);
    x_->setRange(-0.5, std::max(0, n) - 0.5);
    if (namesShown_) {
        for (int i = first_; i < first_ + n; ++i) {
            const QString s = shortLayerName(barResult(i).name);
            x_->append(x_->categoriesLabels().contains(s) ? barLabel(i) : s, i - first_ + 0.5);  // labels are unique
        }
        x_->setLabelsAngle(n > 8 ? -90 : 0);
        x_->setLabelsVisible(true);
        x_->setGridLineVisible(false);
        x_->setTitleText(QString());
        return;
    }
    x_->setLabelsAngle(0);
    x_->setGridLineVisible(true);  // lines between the groups
    x_->setLabelsVisible(true);    // hidden labels leave Qt Charts too little room for the title
    if (sort_ == DistortionSort::Value) {
        x_->append(tr("worst \u2192 best"), n - 0.5);
        x_->setTitleText(tr("%1 layers (hover for names; zoom in with Show)").arg(n));
        return;
    }
    // Runs of bars of one block (layer order) or one kind (by kind); where a label per run does not fit,
    // runs are joined k at a time ("0-2", "3-5", ...).
    std::vector<std::pair<QString, int>> runs;  // label, last bar (window position)
    for (int i = first_; i < first_ + n; ++i) {
        const QString brief = shortLayerName(barResult(i).name);
        const int dot = brief.indexOf(QLatin1Char('.'));
        const QString g = dot < 0 ? brief : sort_ == DistortionSort::Kind ? brief.mid(dot + 1) : brief.left(dot);
        if (!runs.empty() && runs.back().first == g) runs.back().second = i - first_;
        else runs.emplace_back(g, i - first_);
    }
    const QFontMetrics fm(x_->labelsFont());
    for (size_t k = 1; k <= runs.size(); ++k) {
        QStringList labels;
        std::vector<int> ends;
        int widest = 0;
        for (size_t r = 0; r < runs.size(); r += k) {
            const size_t last = std::min(runs.size(), r + k) - 1;
            labels << (last == r ? runs[r].first : runs[r].first + QStringLiteral("\u2013") + runs[last].first);
            ends.push_back(runs[last].second);
            widest = std::max(widest, fm.horizontalAdvance(labels.back()));
        }
        if (plot / double(labels.size()) < widest + 10 && k < runs.size()) continue;
        for (size_t j = 0; j < ends.size(); ++j) x_->append(labels[int(j)], ends[j] + 0.5);  // a repeated label joins the next run
        break;
    }
    x_->setTitleText(tr("%1 layers by %2 (hover for names; zoom in with Show)")
                         .arg(n)
                         .arg(sort_ == DistortionSort::Kind ? tr("kind") : tr("block")));
}

}  // namespace quench::gui
