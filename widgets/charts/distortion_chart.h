#pragma once
// Per-layer distortion bars from quantize_model_layers' results: one bar per layer, coloured by codec
// (legend), with the metric and the order chosen by the user (combo boxes above the chart) or by code.
// Tooltips explain the metric and give the exact value core reported.
#include <QString>
#include <QWidget>

#include <vector>

#include "quant/model_quantizer.h"

class QChartView;
class QComboBox;
class QLabel;
class QStackedLayout;

namespace quench::gui {

enum class DistortionMetric {
    OutputRelError,  // LayerMetrics::output_rel_error (unknown, -1, is shown as a missing bar)
    WeightRelFro,    // LayerMetrics::rel_fro_error
    SqnrDb,          // LayerMetrics::sqnr_db
    WeightMse,       // LayerMetrics::weight_mse
};
enum class DistortionSort {
    LayerOrder,  // as given (plan order)
    Value,       // worst first: descending error, ascending SQNR
};

class DistortionChart : public QWidget {
    Q_OBJECT
public:
    explicit DistortionChart(QWidget* parent = nullptr);

    void setResults(std::vector<LayerResult> results);  // empty: shows "no data"
    void setMetric(DistortionMetric m);
    DistortionMetric metric() const { return metric_; }
    void setSort(DistortionSort s);
    DistortionSort sort() const { return sort_; }

    // What is drawn, in display order (after sorting); for tests and for the window's status texts.
    int barCount() const { return int(order_.size()); }
    double barValue(int i) const;    // the metric value core reported; NaN when unknown (output error -1)
    QString barLabel(int i) const;   // the layer name
    QString barCodec(int i) const;   // codec name ("rtn"), the bar's colour and legend entry
    QString barToolTip(int i) const; // layer, spec, value, and what the metric means
    const LayerResult& barResult(int i) const;
    bool showsNoData() const { return results_.empty(); }
    QChartView* chartView() const { return view_; }

    static QString metricName(DistortionMetric m);         // "output rel. error", ...
    static QString metricExplanation(DistortionMetric m);  // one or two sentences for tooltips

protected:
    void changeEvent(QEvent* e) override;  // follows light/dark palette switches

private:
    void rebuild();
    double valueOf(const LayerResult& r) const;

    std::vector<LayerResult> results_;
    std::vector<int> order_;  // display position -> index into results_
    DistortionMetric metric_ = DistortionMetric::OutputRelError;
    DistortionSort sort_ = DistortionSort::LayerOrder;
    QComboBox* metricBox_ = nullptr;
    QComboBox* sortBox_ = nullptr;
    QChartView* view_ = nullptr;
    QStackedLayout* stack_ = nullptr;  // "no data" label or the chart
};

}  // namespace quench::gui
