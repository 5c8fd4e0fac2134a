#pragma once
// Per-layer distortion bars from quantize_model_layers' results: one bar per layer, coloured by codec
// (legend), with the metric, the order (layer order, grouped by kind, worst first) and a layer filter chosen
// by the user (controls above the chart) or by code. Bars are labelled with short names ("3.down"); the
// tooltips name the full layer, explain the metric and give the exact value core reported.
// A 7B model has 224 layers: the chart shows a window of them (zoom: bars per view) with a scroll bar
// under it (the wheel over the chart scrolls, Ctrl+wheel zooms), and an update rebuilds only the bars in
// the window, so it stays well under the 100 ms an event-loop turn may take.
#include <QString>
#include <QStringList>
#include <QWidget>

#include <vector>

#include "jobs/model_quantizer.h"

class QChart;
class QChartView;
class QComboBox;
class QCategoryAxis;
class QLabel;
class QLineEdit;
class QScrollBar;
class QStackedBarSeries;
class QStackedLayout;
class QValueAxis;

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
    Kind,        // grouped by kind (every q, then every k, ...), blocks in order within a kind
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
    void setFilter(const QString& text);  // LayerFilter syntax (chart_style.h): "3", "down", "1*.q"
    QString filter() const;
    // Zoom: bars per view (0: all). Until set, all when there are at most kAutoAll bars, else kDefaultView.
    void setBarsPerView(int n);
    int barsPerView() const;
    void setFirstShownBar(int i);  // scrolls the window
    int firstShownBar() const { return first_; }
    static constexpr int kAutoAll = 16;
    static constexpr int kDefaultView = 14;  // two Llama blocks: names legible in the tab at 1280 x 800

    // What is drawn, in display order (after filtering and sorting; the window shows a part of it); for
    // tests and for the window's status texts.
    int barCount() const { return int(order_.size()); }
    int shownBarCount() const;         // bars in the window
    double barValue(int i) const;      // the metric value core reported; NaN when unknown (output error -1)
    QString barLabel(int i) const;     // the full layer name (the axis shows shortLayerName of it)
    QString barCodec(int i) const;     // codec name ("rtn"), the bar's colour and legend entry
    QString barToolTip(int i) const;   // layer, spec, value, and what the metric means
    const LayerResult& barResult(int i) const;
    bool showsNoData() const { return results_.empty(); }
    QString hint() const;  // the text centred over the chart when it has nothing to draw; empty otherwise
    QChartView* chartView() const { return view_; }
    QScrollBar* scrollBar() const { return scroll_; }

    static QString metricName(DistortionMetric m);         // "output rel. error", ...
    static QString metricExplanation(DistortionMetric m);  // one or two sentences for tooltips

protected:
    void changeEvent(QEvent* e) override;  // follows light/dark palette switches
    bool eventFilter(QObject* watched, QEvent* e) override;  // wheel over the chart: scroll, Ctrl: zoom

private:
    void rebuild();  // order, scale, legend: after new results, metric, sort or filter
    void redraw();   // the bars of the window
    void updateAxis();  // names under the bars when they fit, else the groups (block or kind)
    double plotWidth() const;
    bool namesFit() const;
    double valueOf(const LayerResult& r) const;

    std::vector<LayerResult> results_;
    std::vector<int> order_;  // display position -> index into results_
    QStringList codecs_;      // legend entries: codecs of the shown bars, in order of first appearance
    DistortionMetric metric_ = DistortionMetric::OutputRelError;
    DistortionSort sort_ = DistortionSort::LayerOrder;
    int perView_ = -1;  // -1: automatic (see kAutoAll)
    int first_ = 0;
    QComboBox* metricBox_ = nullptr;
    QComboBox* sortBox_ = nullptr;
    QComboBox* zoomBox_ = nullptr;
    QLineEdit* filter_ = nullptr;
    QChartView* view_ = nullptr;
    QChart* chart_ = nullptr;  // built once; updates change its series and axes
    QStackedBarSeries* series_ = nullptr;
    QCategoryAxis* x_ = nullptr;  // a short name per bar, or a label per block / kind
    bool namesShown_ = false;
    QValueAxis* y_ = nullptr;
    QScrollBar* scroll_ = nullptr;
    QLabel* hint_ = nullptr;
    QStackedLayout* stack_ = nullptr;  // "no data" label or the chart
};

}  // namespace quench::gui
