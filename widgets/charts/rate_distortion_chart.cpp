#include "rate_distortion_chart.h"

#include <QComboBox>
#include <QCursor>
#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QStackedLayout>
#include <QToolTip>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QLogValueAxis>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>

#include "chart_style.h"

namespace quench::gui {

namespace {
// Distinct hues of similar lightness, readable on light and dark backgrounds.
QColor curveColor(int i) {
    static const QColor c[] = {QColor(0x4e, 0x79, 0xa7), QColor(0xf2, 0x8e, 0x2b), QColor(0xe1, 0x57, 0x59),
                               QColor(0x76, 0xb7, 0xb2), QColor(0x59, 0xa1, 0x4f), QColor(0xed, 0xc9, 0x48),
                               QColor(0xb0, 0x7a, 0xa1), QColor(0xff, 0x9d, 0xa7), QColor(0x9c, 0x75, 0x5f)};
    return c[i % 9];
}
}  // namespace

RateDistortionChart::RateDistortionChart(QWidget* parent) : QWidget(parent) {
    list_ = new QListWidget(this);
    list_->setToolTip(tr("Tick the layers whose curves to draw"));
    list_->setMaximumWidth(220);  // the full layer names fit; the chart keeps the rest
    connect(list_, &QListWidget::itemChanged, this, [this] {
        QStringList names;
        for (int i = 0; i < list_->count(); ++i)
            if (list_->item(i)->checkState() == Qt::Checked) names << list_->item(i)->text();
        if (names != chosen_) {
            chosen_ = names;
            rebuild();
        }
    });
    metricBox_ = new QComboBox(this);
    metricBox_->addItem(tr("KL (nats/token)"), int(RdMetric::Kl));
    metricBox_->setItemData(0, tr("Model KL from full precision with only this layer quantized (proxy where not measured)"),
                            Qt::ToolTipRole);
    metricBox_->addItem(tr("output rel. error"), int(RdMetric::OutputRelError));
    metricBox_->setItemData(1, tr("||X(W - W')^T||² / ||XW^T||² on calibration rows"), Qt::ToolTipRole);
    connect(metricBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setMetric(RdMetric(metricBox_->itemData(i).toInt())); });
    view_ = new QChartView(this);
    view_->setRenderHint(QPainter::Antialiasing);
    stack_ = noDataStack(view_, tr("No data: run a sensitivity measurement to see rate-distortion curves."), this);

    auto* left = new QVBoxLayout;
    auto* metricRow = new QHBoxLayout;
    metricRow->addWidget(new QLabel(tr("Y:"), this));
    metricRow->addWidget(metricBox_, 1);
    left->addLayout(metricRow);
    left->addWidget(list_, 1);
    auto* layout = new QHBoxLayout(this);
    layout->addLayout(left);
    layout->addLayout(stack_, 1);
    rebuild();
}

void RateDistortionChart::setMeasurements(const Measurements& m) {
    m_ = m;
    chosen_.clear();
    for (const SensitivityLayer& l : m_.layers())
        if (chosen_.size() < kDefaultLayers) chosen_ << QString::fromStdString(l.name);
    list_->blockSignals(true);
    list_->clear();
    for (const SensitivityLayer& l : m_.layers()) {
        auto* item = new QListWidgetItem(QString::fromStdString(l.name), list_);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(chosen_.contains(item->text()) ? Qt::Checked : Qt::Unchecked);
    }
    list_->blockSignals(false);
    rebuild();
}

void RateDistortionChart::setLayers(const QStringList& names) {
    chosen_.clear();
    for (const QString& n : names)
        if (m_.layer(n.toStdString())) chosen_ << n;
    list_->blockSignals(true);
    for (int i = 0; i < list_->count(); ++i)
        list_->item(i)->setCheckState(chosen_.contains(list_->item(i)->text()) ? Qt::Checked : Qt::Unchecked);
    list_->blockSignals(false);
    rebuild();
}

void RateDistortionChart::setMetric(RdMetric metric) {
    metric_ = metric;
    metricBox_->blockSignals(true);
    metricBox_->setCurrentIndex(metricBox_->findData(int(metric)));
    metricBox_->blockSignals(false);
    rebuild();
}

void RateDistortionChart::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) applyPalette(view_->chart(), palette());
}

void RateDistortionChart::rebuild() {
    series_.clear();
    for (const QString& name : chosen_) {
        Curve c;
        c.layer = name;
        std::vector<const SensitivityPoint*> pts = m_.points_of(name.toStdString());
        std::stable_sort(pts.begin(), pts.end(), [](auto* a, auto* b) { return a->bits_per_weight < b->bits_per_weight; });
        for (const SensitivityPoint* p : pts) {
            if (!p->available) continue;
            const double y = metric_ == RdMetric::OutputRelError ? p->output_rel_error
                             : p->has_kl                         ? p->kl
                                                                 : p->proxy_kl;
            if (!(y > 0)) continue;  // unknown (-1), or zero: not on a log axis
            c.points.emplace_back(p->bits_per_weight, y);
            c.specs << QString::fromStdString(p->spec);
        }
        if (!c.points.empty()) series_.push_back(std::move(c));
    }

    auto* chart = new QChart;
    chart->setAnimationOptions(QChart::NoAnimation);
    chart->legend()->setAlignment(Qt::AlignTop);
    auto* x = new QValueAxis;
    x->setTitleText(tr("bits per weight (total)"));
    auto* y = new QLogValueAxis;
    y->setTitleText(metric_ == RdMetric::Kl ? tr("KL, nats/token (log)") : tr("output rel. error (log)"));
    y->setLabelFormat(QStringLiteral("%.0e"));
    chart->addAxis(x, Qt::AlignBottom);
    chart->addAxis(y, Qt::AlignLeft);
    double xlo = 1e300, xhi = -1e300, ylo = 1e300, yhi = 0;
    for (size_t i = 0; i < series_.size(); ++i) {
        auto* s = new QLineSeries;
        s->setName(shortLayerName(series_[i].layer.toStdString()));
        QPen pen(curveColor(int(i)));
        pen.setWidthF(2);
        s->setPen(pen);
        s->setPointsVisible(true);
        for (const QPointF& p : series_[i].points) {
            s->append(p);
            xlo = std::min(xlo, p.x()), xhi = std::max(xhi, p.x());
            ylo = std::min(ylo, p.y()), yhi = std::max(yhi, p.y());
        }
        chart->addSeries(s);
        s->attachAxis(x);
        s->attachAxis(y);
        connect(s, &QLineSeries::hovered, this, [this, i](const QPointF& at, bool on) {
            if (!on || i >= series_.size()) return QToolTip::hideText();
            const Curve& c = series_[i];
            size_t best = 0;  // the nearest point in bits
            for (size_t k = 1; k < c.points.size(); ++k)
                if (std::abs(c.points[k].x() - at.x()) < std::abs(c.points[best].x() - at.x())) best = k;
            QToolTip::showText(QCursor::pos(),
                               tr("<b>%1</b><br>%2<br>%3 bits/weight<br>%4 %5")
                                   .arg(c.layer.toHtmlEscaped(), c.specs[int(best)].toHtmlEscaped(),
                                        formatValue(c.points[best].x()),
                                        metric_ == RdMetric::Kl ? tr("KL") : tr("output rel. error"),
                                        formatValue(c.points[best].y())),
                               view_);
        });
    }
    if (yhi > 0) {
        x->setRange(std::floor(xlo) - 0.5, std::ceil(xhi) + 0.5);
        y->setRange(std::pow(10.0, std::floor(std::log10(ylo))), std::pow(10.0, std::ceil(std::log10(yhi))));
    }
    applyPalette(chart, palette());
    QChart* old = view_->chart();
    view_->setChart(chart);
    delete old;
    view_->setToolTip(tr("Each curve: one layer's candidate settings, distortion against bits. Lower-left is "
                         "better; a steep curve means that layer gains much from extra bits."));
    stack_->setCurrentIndex(showsNoData() ? 0 : 1);
}

}  // namespace quench::gui
