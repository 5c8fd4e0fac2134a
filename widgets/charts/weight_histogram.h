#pragma once
// Histogram of one layer's weights with the quantization levels drawn over it as vertical lines, to see
// how a grid (a row's or a group's levels, or any levels the caller computes) covers the distribution.
// Takes plain floats: the caller copies them out of a tensor (weight.contiguous().data_ptr<float>()).
#include <QString>
#include <QWidget>

#include <cstddef>
#include <cstdint>
#include <vector>

class QChartView;
class QStackedLayout;

namespace quench::gui {

class WeightHistogram : public QWidget {
    Q_OBJECT
public:
    explicit WeightHistogram(QWidget* parent = nullptr);

    // bins = 0: sqrt(n) clamped to [10, 200]. Non-finite weights are skipped. n = 0 shows "no data".
    void setWeights(const float* w, std::size_t n, int bins = 0);
    void setWeights(const std::vector<float>& w, int bins = 0) { setWeights(w.data(), w.size(), bins); }
    // Level values (any order, duplicates dropped); the x range widens to include them.
    void setLevels(std::vector<double> levels);
    void setTitle(const QString& title);  // e.g. "model.layers.0.mlp.down_proj, row 0, group 0"

    std::size_t weightCount() const { return n_; }
    int binCount() const { return int(counts_.size()); }
    double binLow(int i) const { return lo_ + i * width_; }
    double binHigh(int i) const { return lo_ + (i + 1) * width_; }
    int64_t binHits(int i) const { return counts_.at(size_t(i)); }  // weights in [low, high); last bin closed
    int levelCount() const { return int(levels_.size()); }
    double level(int i) const { return levels_.at(size_t(i)); }  // sorted ascending
    bool showsNoData() const { return n_ == 0; }
    QChartView* chartView() const { return view_; }

protected:
    void changeEvent(QEvent* e) override;  // follows light/dark palette switches

private:
    void rebuild();

    std::size_t n_ = 0;
    double wmin_ = 0, wmax_ = 0;  // of the weights
    double lo_ = 0, width_ = 1;   // bins
    std::vector<int64_t> counts_;
    std::vector<double> levels_;
    QString title_;
    QChartView* view_ = nullptr;
    QStackedLayout* stack_ = nullptr;
};

}  // namespace quench::gui
