#include "layer_bar_plot.h"

#include <QFontMetrics>
#include <QHelpEvent>
#include <QPainter>
#include <QToolTip>

#include <algorithm>
#include <cmath>

namespace quench::gui {

LayerBarPlot::LayerBarPlot(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
}

void LayerBarPlot::setLabels(QStringList labels) {
    labels_ = std::move(labels);
    update();
}
void LayerBarPlot::setYAxis(double max, const QString& title) {
    yMax_ = max > 0 ? max : 1;
    yTitle_ = title;
    update();
}
void LayerBarPlot::setLegend(std::vector<std::pair<QString, QColor>> entries) {
    legend_ = std::move(entries);
    update();
}
void LayerBarPlot::setBars(std::vector<double> values, std::vector<QColor> colors) {
    values_ = std::move(values);
    colors_ = std::move(colors);
    colors_.resize(values_.size(), palette().color(QPalette::Mid));
    update();
}

// Room for labels below when the bars are wide enough to carry them (rotated names), else a thin margin.
QRectF LayerBarPlot::plotRect() const {
    const QFontMetrics fm(font());
    const int n = std::max(1, int(values_.size()));
    const double left = fm.height() * 1.5 + fm.horizontalAdvance(QStringLiteral("00.0")) + 8;
    const double top = fm.height() * 2.0;
    const double w = width() - left - 10;
    const bool labels = w / n >= fm.height() && !labels_.isEmpty();
    double bottom = fm.height() * 1.5;
    if (labels) {
        int longest = 0;
        for (const QString& l : labels_) longest = std::max(longest, fm.horizontalAdvance(l));
        bottom = std::min(double(longest) + 8, height() * 0.35);
    }
    return QRectF(left, top, std::max(10.0, w), std::max(10.0, height() - top - bottom));
}

int LayerBarPlot::barAt(QPoint pos) const {
    const QRectF r = plotRect();
    if (values_.empty() || !r.contains(pos)) return -1;
    const int i = int((pos.x() - r.left()) / r.width() * double(values_.size()));
    return std::clamp(i, 0, int(values_.size()) - 1);
}

bool LayerBarPlot::event(QEvent* e) {
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        const int i = barAt(he->pos());
        if (i >= 0 && tooltip_) QToolTip::showText(he->globalPos(), tooltip_(i), this);
        else QToolTip::showText(he->globalPos(), toolTip(), this);
        return true;
    }
    return QWidget::event(e);
}

void LayerBarPlot::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().color(QPalette::Base));
    const QColor text = palette().color(QPalette::WindowText);
    QColor grid = palette().color(QPalette::Mid);
    const QFontMetrics fm(font());
    const QRectF r = plotRect();

    // Legend across the top.
    double x = r.left();
    for (const auto& [name, color] : legend_) {
        const double s = fm.height() * 0.7;
        p.fillRect(QRectF(x, fm.height() * 0.5, s, s), color);
        p.setPen(text);
        p.drawText(QPointF(x + s + 4, fm.height() * 0.5 + s), name);
        x += s + 16 + fm.horizontalAdvance(name);
    }

    // Y axis: about 5 ticks at 1, 2 or 5 x 10^k.
    const double raw = yMax_ / 5;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    for (double v = 0; v <= yMax_ + 1e-9; v += step) {
        const double y = r.bottom() - v / yMax_ * r.height();
        grid.setAlpha(v == 0 ? 255 : 90);
        p.setPen(grid);
        p.drawLine(QPointF(r.left(), y), QPointF(r.right(), y));
        p.setPen(text);
        p.drawText(QRectF(0, y - fm.height(), r.left() - 4, 2 * fm.height()), Qt::AlignRight | Qt::AlignVCenter,
                   QString::number(v, 'g', 3));
    }
    p.save();
    p.translate(fm.height() * 0.2, r.center().y());
    p.rotate(-90);
    p.drawText(QRectF(-r.height() / 2, 0, r.height(), fm.height() * 1.2), Qt::AlignCenter, yTitle_);
    p.restore();

    // Bars, with a gap when they are at least 4 px wide.
    const int n = int(values_.size());
    if (n == 0) return;
    const double w = r.width() / n;
    const double gap = w >= 4 ? w * 0.15 : 0;
    for (int i = 0; i < n; ++i) {
        const double h = std::clamp(values_[size_t(i)] / yMax_, 0.0, 1.0) * r.height();
        p.fillRect(QRectF(r.left() + i * w + gap / 2, r.bottom() - h, w - gap, h), colors_[size_t(i)]);
    }
    if (w >= fm.height() && labels_.size() == n) {
        p.setPen(text);
        for (int i = 0; i < n; ++i) {
            p.save();
            p.translate(r.left() + (i + 0.5) * w + fm.ascent() / 2.0 - 1, r.bottom() + 4);
            p.rotate(-90);
            p.drawText(QRectF(-(height() - r.bottom()), -fm.ascent(), height() - r.bottom() - 4, fm.height()),
                       Qt::AlignRight | Qt::AlignVCenter, labels_[i]);
            p.restore();
        }
    }
}

}  // namespace quench::gui
