#pragma once
// Rate-distortion curves from a sensitivity measurement: for each chosen layer, its candidates as points
// (total bits per weight, KL or output error), joined in order of bits, on a log y axis. The layer list on
// the left (short names, a filter for the 224 layers of a 7B model) picks the curves; the legend uses short
// names too, and hovering a point or a legend entry names the full layer. Drag a rectangle to zoom in,
// right-click to zoom out. The chart and its series are made once and refilled, so an update is cheap.
#include <QPointF>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <vector>

#include "jobs/sensitivity.h"

class QChart;
class QChartView;
class QLabel;
class QLineEdit;
class QLineSeries;
class QListWidget;
class QLogValueAxis;
class QComboBox;
class QStackedLayout;
class QValueAxis;

namespace quench::gui {

enum class RdMetric {
    Kl,              // measured KL where there is one, else the proxy (as CostSource::Auto)
    OutputRelError,  // output relative error on calibration rows
};

class RateDistortionChart : public QWidget {
    Q_OBJECT
public:
    explicit RateDistortionChart(QWidget* parent = nullptr);

    // Shows the first kDefaultLayers layers until setLayers picks others. Empty: "no data".
    void setMeasurements(const Measurements& m);
    void setLayers(const QStringList& names);  // full names; unknown names are ignored
    QStringList layers() const { return chosen_; }
    void setFilter(const QString& text);  // LayerFilter syntax (chart_style.h): hides non-matching list rows
    QStringList shownLayers() const;       // the list rows the filter lets through (full names)
    void plotShown();                      // ticks the shown rows (at most kMaxCurves) in place of the others
    static constexpr int kMaxCurves = 16;
    void setMetric(RdMetric metric);
    RdMetric metric() const { return metric_; }
    static constexpr int kDefaultLayers = 6;

    // One series per chosen layer that has at least one point with a positive value (log axis), in the
    // order of the layer list; points sorted by bits.
    int seriesCount() const { return int(curves_.size()); }
    QString seriesName(int i) const { return curves_.at(size_t(i)).layer; }  // the full layer name
    std::vector<QPointF> seriesPoints(int i) const { return curves_.at(size_t(i)).points; }
    QStringList seriesSpecs(int i) const { return curves_.at(size_t(i)).specs; }
    QString legendLabel(int i) const;    // what the legend shows for curve i (its short name)
    QString legendToolTip(int i) const;  // shown when the legend entry is hovered (the full name)
    bool showsNoData() const { return m_.empty(); }
    QString hint() const;  // centred over the chart when it has nothing to draw; empty otherwise
    QChartView* chartView() const { return view_; }

protected:
    void changeEvent(QEvent* e) override;  // follows light/dark palette switches

private:
    struct Curve {
        QString layer;
        std::vector<QPointF> points;
        QStringList specs;
    };
    void rebuild();
    QLineSeries* seriesAt(int i);  // the i-th series of the pool, made and connected on first use

    Measurements m_;
    QStringList chosen_;
    RdMetric metric_ = RdMetric::Kl;
    std::vector<Curve> curves_;
    std::vector<QLineSeries*> pool_;  // series in the chart, reused by later updates
    QListWidget* list_ = nullptr;
    QLineEdit* filter_ = nullptr;
    QComboBox* metricBox_ = nullptr;
    QChartView* view_ = nullptr;
    QChart* chart_ = nullptr;
    QValueAxis* x_ = nullptr;
    QLogValueAxis* y_ = nullptr;
    QLabel* hint_ = nullptr;
    QStackedLayout* stack_ = nullptr;
};

}  // namespace quench::gui
