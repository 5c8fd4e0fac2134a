#pragma once
// A plain painted bar chart, one bar per layer, for charts that redraw on every slider move: Qt Charts
// lays out one graphics item per bar and takes tens of milliseconds for a few hundred layers, this paints
// a thousand bars in about a millisecond. Axis, grid, legend and tooltips follow the widget palette.
#include <QColor>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <functional>
#include <utility>
#include <vector>

namespace quench::gui {

class LayerBarPlot : public QWidget {
    Q_OBJECT
public:
    explicit LayerBarPlot(QWidget* parent = nullptr);

    void setLabels(QStringList labels);  // one per bar; drawn under the bars when they fit
    void setYAxis(double max, const QString& title);
    void setLegend(std::vector<std::pair<QString, QColor>> entries);
    // Values and colours of every bar (sizes must match the labels); repaints once.
    void setBars(std::vector<double> values, std::vector<QColor> colors);
    void setToolTipProvider(std::function<QString(int bar)> f) { tooltip_ = std::move(f); }

    int barCount() const { return int(values_.size()); }
    double value(int i) const { return values_.at(size_t(i)); }
    QColor color(int i) const { return colors_.at(size_t(i)); }
    int barAt(QPoint pos) const;  // -1 outside the bars

    QSize sizeHint() const override { return {800, 400}; }
    QSize minimumSizeHint() const override { return {300, 160}; }

protected:
    void paintEvent(QPaintEvent*) override;
    bool event(QEvent* e) override;  // tooltips

private:
    QRectF plotRect() const;
    QStringList labels_;
    std::vector<double> values_;
    std::vector<QColor> colors_;
    std::vector<std::pair<QString, QColor>> legend_;
    double yMax_ = 1;
    QString yTitle_;
    std::function<QString(int)> tooltip_;
};

}  // namespace quench::gui
