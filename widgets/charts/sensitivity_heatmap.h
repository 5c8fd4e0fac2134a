#pragma once
// KL sensitivity as a heatmap: one row per transformer block, one column per layer kind (q, k, v, o, gate,
// up, down, lm_head), each cell the model KL when only that layer is quantized with the chosen candidate
// setting (or the mean over the layer's candidates). Log colour scale with a legend; hover for values.
// A 7B model's 32 blocks fit as they are; more rows can be zoomed to a line each (then the grid scrolls), and
// a layer filter narrows the rows and columns. The grid is painted in one pass: an update costs
// about a millisecond whatever the size.
#include <QColor>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <vector>

#include "jobs/sensitivity.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QScrollArea;
class QStackedLayout;

namespace quench::gui {

class SensitivityHeatmap : public QWidget {
    Q_OBJECT
public:
    explicit SensitivityHeatmap(QWidget* parent = nullptr);

    // source: Kl (measured only), Proxy, or Auto (measured where there is one, else the proxy), as the
    // allocation uses it. An empty Measurements shows "no data".
    void setMeasurements(const Measurements& m, CostSource source = CostSource::Auto);
    QStringList candidates() const;  // canonical specs, in first-measured order
    void setCandidate(const QString& spec);  // empty: the mean over each layer's candidates
    QString candidate() const { return candidate_; }
    void setFilter(const QString& text);  // LayerFilter syntax (chart_style.h); rows and columns of the matches
    QString filter() const;
    void setFitRows(bool fit);  // true (default): every row in the view; false: a line of text per row, scrolled
    bool fitsRows() const { return fit_; }

    int rowCount() const { return int(blocks_.size()); }
    int columnCount() const { return int(kinds_.size()); }
    QString rowLabel(int r) const;     // "block 3"; "other" for layers outside blocks (lm_head)
    QString columnLabel(int c) const;  // the layer kind
    double cellValue(int r, int c) const;  // nats; NaN when the cell has no layer or no value
    QString cellLayer(int r, int c) const;  // layer name, empty when none
    QColor cellColor(int r, int c) const;   // the drawn colour (palette Mid when no value)
    QString cellToolTip(int r, int c) const;
    double scaleMin() const { return lo_; }  // colour scale ends (log), over the shown cells
    double scaleMax() const { return hi_; }
    bool showsNoData() const { return blocks_.empty(); }  // no measurements, or none through the filter
    QWidget* canvas() const { return canvas_; }

private:
    void recompute();
    friend class HeatmapCanvas;

    Measurements m_;
    CostSource source_ = CostSource::Auto;
    QString candidate_;
    std::vector<int> blocks_;         // row -> block (-1 last)
    std::vector<std::string> kinds_;  // column -> kind
    std::vector<std::string> layer_;  // row * columns + column -> layer name ("" none)
    std::vector<double> value_;       // same index -> value (NaN none)
    std::vector<char> proxy_;         // the value (or part of the mean) is a proxy, not measured
    double lo_ = 0, hi_ = 0;
    bool fit_ = true;
    QComboBox* candidateBox_ = nullptr;
    QComboBox* zoomBox_ = nullptr;
    QLineEdit* filter_ = nullptr;
    QWidget* canvas_ = nullptr;
    QScrollArea* scrollArea_ = nullptr;
    QStackedLayout* stack_ = nullptr;
};

}  // namespace quench::gui
