#include "rate_distortion_chart.h"

#include <QComboBox>
#include <QCursor>
#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QStackedLayout>
#include <QToolTip>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLegend>
#include <QtCharts/QLegendMarker>
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
    list_->setMaximumWidth(160);  // short names: the chart keeps the rest
    connect(list_, &QListWidget::itemChanged, this, [this] {
        QStringList names;
        for (int i = 0; i < list_->count(); ++i)
            if (list_->item(i)->checkState() == Qt::Checked) names << list_->item(i)->data(Qt::UserRole).toString();
        if (names != chosen_) {
            chosen_ = names;
            rebuild();
        }
    });
    filter_ = new QLineEdit(this);
    filter_->setPlaceholderText(tr("filter: 3, down"));
    filter_->setClearButtonEnabled(true);
    filter_->setMaximumWidth(160);
    filter_->setToolTip(tr("List only matching layers: a block (3), a kind (down), a short name (3.down), a part of "
                           "the full name (mlp), or a wildcard (1*.q)"));
    connect(filter_, &QLineEdit::textChanged, this, [this](const QString& text) {
        const LayerFilter filter(text);
        for (int i = 0; i < list_->count(); ++i)
            list_->item(i)->setHidden(!filter.matches(list_->item(i)->data(Qt::UserRole).toString().toStdString()));
    });
    auto* plot = new QPushButton(tr("Plot shown"), this);
    plot->setMaximumWidth(160);
    plot->setToolTip(tr("Draw the curves of the listed layers (at most %1) in place of the ticked ones").arg(kMaxCurves));
    connect(plot, &QPushButton::clicked, this, &RateDistortionChart::plotShown);
    metricBox_ = new QComboBox(this);
    metricBox_->addItem(tr("KL (nats/token)"), int(RdMetric::Kl));
    metricBox_->setItemData(0, tr("Model KL from full precision with only this layer quantized (proxy where not measured)"),
                            Qt::ToolTipRole);
    metricBox_->addItem(tr("output rel. error"), int(RdMetric::OutputRelError));
    metricBox_->setItemData(1, tr("||X(W - W')^T||² / ||XW^T||² on calibration rows"), Qt::ToolTipRole);
    metricBox_->setMaximumWidth(160);
    connect(metricBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setMetric(RdMetric(metricBox_->itemData(i).toInt())); });

    chart_ = new QChart;
    chart_->setAnimationOptions(QChart::NoAnimation);
    // At the side: a row along the top has room for about five names and elides the rest to nothing.
    chart_->legend()->setAlignment(Qt::AlignRight);
    x_ = new QValueAxis;
    x_->setTitleText(tr("bits per weight (total)"));
    y_ = new QLogValueAxis;
    y_->setLabelFormat(QStringLiteral("%.0e"));
    chart_->addAxis(x_, Qt::AlignBottom);
    chart_->addAxis(y_, Qt::AlignLeft);
    view_ = new QChartView(chart_, this);
    view_->setRenderHint(QPainter::Antialiasing);
    view_->setRubberBand(QChartView::RectangleRubberBand);  // drag to zoom in, right-click to zoom out
    view_->setToolTip(tr("Each curve: one layer's candidate settings, distortion against bits. Lower-left is "
                         "better; a steep curve means that layer gains much from extra bits. Drag a rectangle to "
                         "zoom in, right-click to zoom out."));
    hint_ = addHintOverlay(view_);
    stack_ = noDataStack(view_, tr("No data: measure sensitivity (Method panel; it needs a calibration text in the "
                                   "Data panel) to see rate-distortion curves."), this);

    auto* left = new QVBoxLayout;
    left->addWidget(metricBox_);
    left->addWidget(filter_);
    left->addWidget(list_, 1);
    left->addWidget(plot);
    auto* layout = new QHBoxLayout(this);
    layout->addLayout(left);
    layout->addLayout(stack_, 1);
    applyPalette(chart_, palette());
    rebuild();
}

void RateDistortionChart::setMeasurements(const Measurements& m) {
    m_ = m;
    chosen_.clear();
    for (const SensitivityLayer& l : m_.layers())
        if (chosen_.size() < kDefaultLayers) chosen_ << QString::fromStdString(l.name);
    const LayerFilter filter(filter_->text());
    list_->blockSignals(true);
    list_->clear();
    for (const SensitivityLayer& l : m_.layers()) {
        const QString name = QString::fromStdString(l.name);
        auto* item = new QListWidgetItem(shortLayerName(l.name), list_);
        item->setData(Qt::UserRole, name);
        item->setToolTip(name);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(chosen_.contains(name) ? Qt::Checked : Qt::Unchecked);
        item->setHidden(!filter.matches(l.name));
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
        list_->item(i)->setCheckState(chosen_.contains(list_->item(i)->data(Qt::UserRole).toString()) ? Qt::Checked
                                                                                                       : Qt::Unchecked);
    list_->blockSignals(false);
    rebuild();
}

void RateDistortionChart::setFilter(const QString& text) { filter_->setText(text); }

QStringList RateDistortionChart::shownLayers() const {
    QStringList out;
    for (int i = 0; i < list_->count(); ++i)
        if (!list_->item(i)->isHidden()) out << list_->item(i)->data(Qt::UserRole).toString();
    return out;
}

void RateDistortionChart::plotShown() { setLayers(shownLayers().mid(0, kMaxCurves)); }

void RateDistortionChart::setMetric(RdMetric metric) {
    metric_ = metric;
    metricBox_->blockSignals(true);
    metricBox_->setCurrentIndex(metricBox_->findData(int(metric)));
    metricBox_->blockSignals(false);
    rebuild();
}

QString RateDistortionChart::legendLabel(int i) const {
    const auto markers = chart_->legend()->markers(pool_.at(size_t(i)));
    return markers.isEmpty() ? QString() : markers.first()->label();
}
QString RateDistortionChart::legendToolTip(int i) const { return seriesName(i); }
QString RateDistortionChart::hint() const { return hint_->isHidden() ? QString() : hint_->text(); }

void RateDistortionChart::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) applyPalette(chart_, palette());
}

QLineSeries* RateDistortionChart::seriesAt(int i) {
    while (int(pool_.size()) <= i) {
        const size_t k = pool_.size();
        auto* s = new QLineSeries;
        s->setPointsVisible(true);
        chart_->addSeries(s);
        s->attachAxis(x_);
        s->attachAxis(y_);
        connect(s, &QLineSeries::hovered, this, [this, k](const QPointF& at, bool on) {
            if (!on || k >= curves_.size()) return QToolTip::hideText();
            const Curve& c = curves_[k];
            size_t best = 0;  // the nearest point in bits
            for (size_t j = 1; j < c.points.size(); ++j)
                if (std::abs(c.points[j].x() - at.x()) < std::abs(c.points[best].x() - at.x())) best = j;
            QToolTip::showText(QCursor::pos(),
                               tr("<b>%1</b><br>%2<br>%3 bits/weight<br>%4 %5")
                                   .arg(c.layer.toHtmlEscaped(), c.specs[int(best)].toHtmlEscaped(),
                                        formatValue(c.points[best].x()),
                                        metric_ == RdMetric::Kl ? tr("KL") : tr("output rel. error"),
                                        formatValue(c.points[best].y())),
                               view_);
        });
        // The legend shows short names; hovering an entry names the layer in full.
        for (QLegendMarker* marker : chart_->legend()->markers(s))
            connect(marker, &QLegendMarker::hovered, this, [this, k](bool on) {
                if (on && k < curves_.size()) QToolTip::showText(QCursor::pos(), legendToolTip(int(k)), view_);
                else QToolTip::hideText();
            });
        pool_.push_back(s);
    }
    return pool_[size_t(i)];
}

void RateDistortionChart::rebuild() {
    curves_.clear();
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
        if (!c.points.empty()) curves_.push_back(std::move(c));
    }

    // Refill the pooled series (one replace() each) and drop the ones no longer needed.
    double xlo = 1e300, xhi = -1e300, ylo = 1e300, yhi = 0;
    for (size_t i = 0; i < curves_.size(); ++i) {
        QLineSeries* s = seriesAt(int(i));
        s->setName(shortLayerName(curves_[i].layer.toStdString()));
        QPen pen(curveColor(int(i)));
        pen.setWidthF(2);
        s->setPen(pen);
        s->replace(QList<QPointF>(curves_[i].points.begin(), curves_[i].points.end()));
        for (const QPointF& p : curves_[i].points) {
            xlo = std::min(xlo, p.x()), xhi = std::max(xhi, p.x());
            ylo = std::min(ylo, p.y()), yhi = std::max(yhi, p.y());
        }
    }
    while (pool_.size() > curves_.size()) {
        chart_->removeSeries(pool_.back());
        delete pool_.back();
        pool_.pop_back();
    }
    y_->setTitleText(metric_ == RdMetric::Kl ? tr("KL, nats/token (log)") : tr("output rel. error (log)"));
    chart_->zoomReset();
    if (yhi > 0) {
        x_->setRange(std::floor(xlo) - 0.5, std::ceil(xhi) + 0.5);
        y_->setRange(std::pow(10.0, std::floor(std::log10(ylo))), std::pow(10.0, std::ceil(std::log10(yhi))));
    }
    applyPalette(chart_, palette());

    QString hint;
    if (!showsNoData() && curves_.empty() && chosen_.isEmpty())
        hint = tr("Tick layers in the list to draw their curves.");
    else if (!showsNoData() && curves_.empty() && metric_ == RdMetric::OutputRelError)
        hint = tr("The output error needs a calibration text (Data panel): measure again with one, or show KL.");
    else if (!showsNoData() && curves_.empty())
        hint = tr("No positive values to draw on the log axis for the ticked layers.");
    hint_->setText(hint);
    hint_->setVisible(!hint.isEmpty());
    stack_->setCurrentIndex(showsNoData() ? 0 : 1);
}

}  // namespace quench::gui
