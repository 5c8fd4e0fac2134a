#pragma once
// Rate-distortion curves from a sensitivity measurement: for each chosen layer, its candidates as points
// (total bits per weight, KL or output error), joined in order of bits, on a log y axis. The layer list on
// the left picks the curves; hovering a point names its setting.
#include <QPointF>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <vector>

#include "analysis/sensitivity.h"

class QChartView;
class QListWidget;
class QComboBox;
class QStackedLayout;

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
    void setLayers(const QStringList& names);  // unknown names are ignored
    QStringList layers() const { return chosen_; }
    void setMetric(RdMetric metric);
    RdMetric metric() const { return metric_; }
    static constexpr int kDefaultLayers = 6;

    // One series per chosen layer that has at least one point with a positive value (log axis), in the
    // order of the layer list; points sorted by bits.
    int seriesCount() const { return int(series_.size()); }
    QString seriesName(int i) const { return series_.at(size_t(i)).layer; }
    std::vector<QPointF> seriesPoints(int i) const { return series_.at(size_t(i)).points; }
    QStringList seriesSpecs(int i) const { return series_.at(size_t(i)).specs; }
    bool showsNoData() const { return m_.empty(); }
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

    Measurements m_;
    QStringList chosen_;
    RdMetric metric_ = RdMetric::Kl;
    std::vector<Curve> series_;
    QListWidget* list_ = nullptr;
    QComboBox* metricBox_ = nullptr;
    QChartView* view_ = nullptr;
    QStackedLayout* stack_ = nullptr;
};

}  // namespace quench::gui
