#pragma once
// The Allocation tab's chart: a bar per layer of its bits per weight, coloured by codec, under short names
// ("3.down"). When a bar per layer would be thinner than its label (224 layers at 1280 x 800), the layers
// scroll sideways at a legible width under a per-block overview that always holds the whole model; clicking
// a block scrolls the layers to it. Both are painted LayerBarPlots, so a slider move redraws in milliseconds.
#include <QColor>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <utility>
#include <vector>

#include "alloc/allocation.h"
#include "alloc/allocation_spec.h"

class QScrollArea;

namespace quench::gui {

class LayerBarPlot;

class AllocationBars : public QWidget {
    Q_OBJECT
public:
    explicit AllocationBars(QWidget* parent = nullptr);

    // The problem's layers (labels, blocks), the legend and the y axis, fixed while the budget moves; clears
    // the bars.
    void setLayers(const std::vector<AllocLayer>& layers, std::vector<std::pair<QString, QColor>> legend, double yMax);
    // The bars of an allocation of those layers (in their order). The caller keeps it alive until the next
    // setAllocation or clear(): tooltips read it.
    void setAllocation(const Allocation& allocation);
    void clear();

    QString codecOf(int layer) const { return codecOfBar_.at(size_t(layer)); }
    int blockCount() const { return int(groupFirst_.size()); }
    double blockBitsPerWeight(int g) const;
    bool overviewShown() const;
    void scrollToBlock(int g);

    LayerBarPlot* layerPlot() const { return plot_; }
    LayerBarPlot* blockPlot() const { return overview_; }
    QScrollArea* layerScroll() const { return scroll_; }

protected:
    bool eventFilter(QObject* watched, QEvent* e) override;  // overview clicks, the viewport resizing
    void changeEvent(QEvent* e) override;                    // palette (light/dark) and font changes

private:
    void fit();

    const Allocation* allocation_ = nullptr;
    int layerCount_ = 0;
    LayerBarPlot* overview_ = nullptr;
    QScrollArea* scroll_ = nullptr;
    LayerBarPlot* plot_ = nullptr;
    std::vector<QString> codecOfBar_;  // codec of each layer's chosen setting
    std::vector<int> groupOfLayer_;    // overview bar of each layer
    std::vector<int> groupFirst_;      // first layer of each overview bar
    QStringList groupTitle_;           // "Block 3" or the layer's name
};

}  // namespace quench::gui
