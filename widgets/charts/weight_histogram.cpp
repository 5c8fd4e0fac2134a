#include "weight_histogram.h"

#include <QEvent>
#include <QPainter>
#include <QStackedLayout>
#include <QVBoxLayout>
#include <QtCharts/QAreaSeries>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>

#include "chart_style.h"

namespace quench::gui {

namespace {

// Draws the levels as vertical lines in the foreground: one painter pass for any number of levels, where a
// series per level would cost a graphics item each.
class LevelsChartView : public QChartView {
public:
    explicit LevelsChartView(QWidget* parent, const std::vector<double>* levels)
        : QChartView(parent), levels_(levels) {}

protected:
    void drawForeground(QPainter* p, const QRectF& rect) override {
        QChartView::drawForeground(p, rect);
        if (!chart() || chart()->series().isEmpty() || levels_->empty()) return;
        const QRectF area = chart()->plotArea();
        QAbstractSeries* s = chart()->series().first();
        QPen pen(QColor(0xe1, 0x57, 0x59));  // the red of the palette: readable on light and dark
        pen.setWidthF(levels_->size() > 64 ? 1.0 : 1.5);
        pen.setCosmetic(true);
        p->save();
        p->setPen(pen);
        p->setClipRect(area);
        for (double v : *levels_) {
            const double x = chart()->mapToPosition(QPointF(v, 0), s).x();
            p->drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
        }
        p->restore();
    }

private:
    const std::vector<double>* levels_;
};

}  // namespace

WeightHistogram::WeightHistogram(QWidget* parent) : QWidget(parent) {
    view_ = new LevelsChartView(this, &levels_);
    view_->setRenderHint(QPainter::Antialiasing);
    view_->setToolTip(tr("How many weights fall in each bin (blue) and the values the quantized weights can take "
                         "(red lines). Weights far from every line lose most when rounded; a grid wider than the "
                         "weights wastes levels."));
    stack_ = noDataStack(view_, tr("No data: pick a layer to see its weight distribution."), this);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(stack_);
    rebuild();
}

void WeightHistogram::setWeights(const float* w, std::size_t n, int bins) {
    n_ = 0;
    wmin_ = 1e300, wmax_ = -1e300;
    for (std::size_t i = 0; i < n; ++i)
        if (std::isfinite(w[i])) wmin_ = std::min(wmin_, double(w[i])), wmax_ = std::max(wmax_, double(w[i])), ++n_;
    if (n_ == 0) wmin_ = wmax_ = 0;
    if (bins <= 0) bins = std::clamp(int(std::sqrt(double(n_))), 10, 200);
    lo_ = wmin_;
    const double span = wmax_ > wmin_ ? wmax_ - wmin_ : std::max(1e-6, std::abs(wmin_) * 1e-3);
    width_ = span / bins;
    counts_.assign(n_ ? size_t(bins) : 0, 0);
    for (std::size_t i = 0; i < n && n_; ++i) {
        if (!std::isfinite(w[i])) continue;
        const int b = std::min(bins - 1, int((double(w[i]) - lo_) / width_));
        ++counts_[size_t(std::max(0, b))];
    }
    rebuild();
}

void WeightHistogram::setLevels(std::vector<double> levels) {
    std::sort(levels.begin(), levels.end());
    levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
    levels_ = std::move(levels);
    rebuild();
}

void WeightHistogram::setTitle(const QString& title) {
    title_ = title;
    if (view_->chart()) view_->chart()->setTitle(title_);
}

void WeightHistogram::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) applyPalette(view_->chart(), palette());
}

void WeightHistogram::rebuild() {
    auto* chart = new QChart;
    chart->setAnimationOptions(QChart::NoAnimation);
    chart->legend()->hide();
    chart->setTitle(title_);
    // The outline as a step function, filled down to zero.
    auto* upper = new QLineSeries;
    int64_t top = 1;
    for (int i = 0; i < binCount(); ++i) {
        upper->append(binLow(i), double(counts_[size_t(i)]));
        upper->append(binHigh(i), double(counts_[size_t(i)]));
        top = std::max(top, counts_[size_t(i)]);
    }
    auto* area = new QAreaSeries(upper);
    QColor fill(0x4e, 0x79, 0xa7);
    area->setPen(QPen(fill.darker(120), 1));
    area->setBrush(fill);
    chart->addSeries(area);
    auto* x = new QValueAxis;
    x->setTitleText(tr("weight value (%1 weights, %2 levels)").arg(n_).arg(levels_.size()));
    double xlo = n_ ? wmin_ : -1, xhi = n_ ? wmax_ : 1;
    if (!levels_.empty()) xlo = std::min(xlo, levels_.front()), xhi = std::max(xhi, levels_.back());
    const double pad = (xhi - xlo) * 0.03 + 1e-12;
    x->setRange(xlo - pad, xhi + pad);
    x->applyNiceNumbers();
    x->setLabelFormat(QStringLiteral("%.3g"));
    auto* y = new QValueAxis;
    y->setTitleText(tr("weights per bin"));
    y->setRange(0, double(top) * 1.05);
    y->applyNiceNumbers();
    y->setLabelFormat(QStringLiteral("%.0f"));
    chart->addAxis(x, Qt::AlignBottom);
    chart->addAxis(y, Qt::AlignLeft);
    area->attachAxis(x);
    area->attachAxis(y);
    applyPalette(chart, palette());
    QChart* old = view_->chart();
    view_->setChart(chart);
    delete old;
    stack_->setCurrentIndex(showsNoData() ? 0 : 1);
}

}  // namespace quench::gui
