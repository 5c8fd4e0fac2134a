#include "allocation_bars.h"

#include <QEvent>
#include <QFontMetrics>
#include <QMouseEvent>
#include <QScrollArea>
#include <QScrollBar>
#include <QVBoxLayout>

#include <algorithm>
#include <map>

#include "chart_style.h"
#include "layer_bar_plot.h"
#include "model/layer_registry.h"

namespace quench::gui {

AllocationBars::AllocationBars(QWidget* parent) : QWidget(parent) {
    overview_ = new LayerBarPlot(this);
    overview_->setMinimumHeight(110);
    overview_->setMaximumHeight(150);
    overview_->setCursor(Qt::PointingHandCursor);
    overview_->installEventFilter(this);
    overview_->setToolTipProvider([this](int g) -> QString {
        if (!allocation_ || g >= blockCount()) return {};
        QString tip = tr("<b>%1</b>: %2 bits/weight").arg(groupTitle_[g].toHtmlEscaped(), formatValue(overview_->value(g)));
        for (size_t i = 0; i < allocation_->layers.size(); ++i)
            if (groupOfLayer_[i] == g)
                tip += QStringLiteral("<br>%1 %2").arg(QString::fromStdString(short_layer_name(allocation_->layers[i].name)),
                                                       QString::fromStdString(allocation_->layers[i].spec).toHtmlEscaped());
        return tip + tr("<br><i>Click to show its layers below</i>");
    });
    plot_ = new LayerBarPlot(this);
    plot_->setToolTip(tr("Bits per weight the allocation gives each layer, coloured by codec"));
    plot_->setToolTipProvider([this](int i) -> QString {
        if (!allocation_ || i >= int(allocation_->layers.size())) return {};
        const LayerChoice& c = allocation_->layers[size_t(i)];
        return tr("<b>%1</b><br>%2%3<br>%4 bits/weight, predicted KL %5 nats/token")
            .arg(QString::fromStdString(c.name).toHtmlEscaped(), QString::fromStdString(c.spec).toHtmlEscaped(),
                 c.pinned ? tr(" (pinned)") : QString(), formatValue(c.bits_per_weight), formatValue(c.cost));
    });
    scroll_ = new QScrollArea(this);
    scroll_->setWidget(plot_);
    scroll_->setWidgetResizable(true);
    scroll_->setFrameShape(QFrame::NoFrame);
    scroll_->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    scroll_->setMinimumHeight(180);
    // Its preferred height would be the plot's (400 px) on top of the overview's: the tab would then scroll
    // vertically at 1280 x 800. It takes what is left instead.
    scroll_->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Ignored);
    scroll_->viewport()->installEventFilter(this);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(overview_, 1);
    layout->addWidget(scroll_, 2);
}

// One overview bar per transformer block, in the order blocks first appear; a layer outside any block
// (lm_head) gets a bar of its own.
void AllocationBars::setLayers(const std::vector<AllocLayer>& layers, std::vector<std::pair<QString, QColor>> legend,
                               double yMax) {
    clear();
    layerCount_ = int(layers.size());
    groupOfLayer_.assign(layers.size(), 0);
    groupFirst_.clear();
    groupTitle_.clear();
    QStringList labels, groupLabels;
    std::map<int, int> groupOfBlock;
    for (size_t i = 0; i < layers.size(); ++i) {
        const AllocLayer& l = layers[i];
        // Core's short names ("3.down"): a full HF name per bar would need a third of the chart's height.
        labels << QString::fromStdString(short_layer_name(l.name));
        const auto it = l.block >= 0 ? groupOfBlock.find(l.block) : groupOfBlock.end();
        if (it != groupOfBlock.end()) {
            groupOfLayer_[i] = it->second;
            continue;
        }
        groupOfLayer_[i] = int(groupFirst_.size());
        if (l.block >= 0) groupOfBlock[l.block] = groupOfLayer_[i];
        groupFirst_.push_back(int(i));
        groupTitle_ << (l.block >= 0 ? tr("Block %1").arg(l.block) : QString::fromStdString(l.name));
        groupLabels << (l.block >= 0 ? QString::number(l.block) : labels.back());
    }
    plot_->setLabels(labels);
    plot_->setLegend(legend);
    plot_->setYAxis(yMax, tr("bits per weight"));
    overview_->setLabels(groupLabels);
    overview_->setLegend(std::move(legend));
    overview_->setYAxis(yMax, tr("per block"));
    fit();
}

void AllocationBars::clear() {
    allocation_ = nullptr;
    codecOfBar_.clear();
    plot_->setBars({}, {});
    overview_->setBars({}, {});
}

void AllocationBars::setAllocation(const Allocation& a) {
    allocation_ = &a;
    const size_t n = a.layers.size(), groups = groupFirst_.size();
    std::vector<double> values(n);
    std::vector<QColor> colors(n);
    codecOfBar_.resize(n);
    // Per block: its bits over its weights, coloured by the codec holding most of its weights.
    std::vector<double> groupBits(groups, 0), groupWeights(groups, 0);
    std::vector<std::vector<std::pair<QString, double>>> groupCodecs(groups);
    for (size_t i = 0; i < n; ++i) {
        const LayerChoice& c = a.layers[i];
        codecOfBar_[i] = codecOfSpec(c.spec);
        values[i] = c.bits_per_weight;
        colors[i] = codecColor(codecOfBar_[i]);
        const size_t g = size_t(groupOfLayer_.at(i));
        groupBits[g] += double(c.bits);
        groupWeights[g] += double(c.weights);
        auto& codecs = groupCodecs[g];
        auto it = std::find_if(codecs.begin(), codecs.end(), [&](const auto& e) { return e.first == codecOfBar_[i]; });
        if (it == codecs.end()) codecs.emplace_back(codecOfBar_[i], double(c.weights));
        else it->second += double(c.weights);
    }
    std::vector<double> groupValues(groups);
    std::vector<QColor> groupColors(groups);
    for (size_t g = 0; g < groups; ++g) {
        groupValues[g] = groupWeights[g] > 0 ? groupBits[g] / groupWeights[g] : 0;
        const auto& codecs = groupCodecs[g];
        const auto top = std::max_element(codecs.begin(), codecs.end(),
                                          [](const auto& x, const auto& y) { return x.second < y.second; });
        groupColors[g] = top == codecs.end() ? QColor() : codecColor(top->first);
    }
    overview_->setBars(std::move(groupValues), std::move(groupColors));
    plot_->setBars(std::move(values), std::move(colors));
}

// A bar per layer needs at least a line of text in width for its label (LayerBarPlot's rule, with its axis
// margin); when the layers need more than the viewport, they scroll and the overview shows the whole model.
void AllocationBars::fit() {
    const QFontMetrics fm(plot_->font());
    const int axis = int(fm.height() * 1.5 + fm.horizontalAdvance(QStringLiteral("00.0")) + 8 + 10) + 2;
    const int need = axis + layerCount_ * (fm.height() + 2);
    const bool fits = need <= scroll_->viewport()->width();
    plot_->setMinimumWidth(fits ? 0 : need);
    overview_->setVisible(!fits && groupFirst_.size() >= 2);
}

bool AllocationBars::overviewShown() const { return overview_->isVisibleTo(this); }
double AllocationBars::blockBitsPerWeight(int g) const { return overview_->value(g); }

void AllocationBars::scrollToBlock(int g) {
    if (g < 0 || g >= blockCount() || plot_->barCount() == 0) return;
    // The first x whose bar is the block's first layer; barAt is -1 left and right of the bars.
    const int first = groupFirst_[size_t(g)], y = plot_->height() / 2;
    auto atOrPast = [&](int x) {
        const int i = plot_->barAt(QPoint(x, y));
        return i >= first || (i < 0 && x > plot_->width() / 2);
    };
    int lo = 0, hi = plot_->width();
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (atOrPast(mid)) hi = mid;
        else lo = mid + 1;
    }
    // The first block shows the y axis too; any other starts at the left edge.
    scroll_->horizontalScrollBar()->setValue(g == 0 ? 0 : std::max(0, lo - 4));
}

bool AllocationBars::eventFilter(QObject* watched, QEvent* e) {
    if (watched == scroll_->viewport() && e->type() == QEvent::Resize) fit();
    if (watched == overview_ && e->type() == QEvent::MouseButtonRelease)
        scrollToBlock(overview_->barAt(static_cast<QMouseEvent*>(e)->position().toPoint()));
    return QWidget::eventFilter(watched, e);
}

void AllocationBars::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) {
        plot_->update();
        overview_->update();
    }
    if (e->type() == QEvent::FontChange) fit();
}

}  // namespace quench::gui
