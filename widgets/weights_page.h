#pragma once
// The Weights tab: a layer's original weights as a histogram (charts/weight_histogram.h) with the
// quantization levels of one group of the layer's latest quantized result drawn over it, to see how the
// grid covers the weights. A grid codec (rtn, gptq, paretoq) has its own levels per (row, group of
// columns): scale * (code - zero) over the whole code range, read from the stored parts. A codebook or
// vector codec (liftquant, lcqat, qamw) has no per-group scalar grid: the page shows the distinct values
// the row dequantizes to, thinned evenly to kMaxLevels. A spin box picks the group (row-major: row *
// groups per row + group); a check box narrows the histogram to that group's own weights.
#include <QString>
#include <QWidget>

#include <cstddef>
#include <cstdint>
#include <vector>

class QCheckBox;
class QLabel;
class QSpinBox;

namespace quench::gui {

class WeightHistogram;
class WorkbenchSession;

class WeightsPage : public QWidget {
    Q_OBJECT

public:
    static constexpr std::size_t kMaxLevels = 256;

    explicit WeightsPage(WorkbenchSession* session, QWidget* parent = nullptr);

    void showLayer(std::size_t layer);  // its original weights, and its levels when it is quantized
    void refresh();                     // the session's results changed: levels (and group range) again
    void clear();                       // no model

    WeightHistogram* histogram() const { return histogram_; }
    QSpinBox* groupSpin() const { return group_; }
    QCheckBox* groupWeightsOnly() const { return groupOnly_; }
    QString levelsText() const;  // the line above the chart: codec, row, group and what the lines are
    int64_t groupRow() const { return row_; }        // of the group shown
    int64_t groupIndex() const { return column_; }  // within its row

private:
    void showGroup();
    void showWeights(int64_t group);  // the layer's weights (-1) or one group's (row-major index)

    WorkbenchSession* session_;
    WeightHistogram* histogram_;
    QSpinBox* group_;
    QCheckBox* groupOnly_;
    QLabel* info_;
    QString problem_;
    bool hasLevels_ = false;  // the layer has a quantized tensor whose groups the spin box counts  // why the layer's tensor shows no levels (core's message); empty: none
    std::size_t layer_ = std::size_t(-1);
    std::vector<float> weights_;  // the layer's original weights, row-major
    int64_t cols_ = 0, groupsPerRow_ = 1, groupSize_ = 0, row_ = 0, column_ = 0;
    int64_t shownGroup_ = -2;  // what the histogram holds: -1 the whole layer, else a group; -2 nothing yet
};

}  // namespace quench::gui
