// ATen before any Qt header: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <ATen/ATen.h>

#include "weights_page.h"

#include <QCheckBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <memory>

#include "charts/weight_histogram.h"
#include "common/error.h"
#include "quant/group_levels.h"
#include "workbench_session.h"

namespace quench::gui {

WeightsPage::WeightsPage(WorkbenchSession* session, QWidget* parent) : QWidget(parent), session_(session) {
    histogram_ = new WeightHistogram(this);
    group_ = new QSpinBox(this);
    group_->setToolTip(tr("Which group's levels to draw, counted row by row (row x groups per row + group): grid "
                          "codecs have their own scale (and zero) per group of columns of each row"));
    groupOnly_ = new QCheckBox(tr("Only this group's weights"), this);
    groupOnly_->setToolTip(tr("Histogram of the chosen group's weights only, the ones its levels must cover"));
    info_ = new QLabel(this);
    info_->setWordWrap(true);
    info_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Levels of group"), this));
    controls->addWidget(group_);
    controls->addWidget(groupOnly_);
    controls->addStretch(1);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(controls);
    layout->addWidget(info_);
    layout->addWidget(histogram_, 1);
    connect(group_, qOverload<int>(&QSpinBox::valueChanged), this, &WeightsPage::showGroup);
    connect(groupOnly_, &QCheckBox::toggled, this, &WeightsPage::showGroup);
    clear();
}

QString WeightsPage::levelsText() const { return info_->text(); }

void WeightsPage::showWeights(int64_t group) {
    // Binning a large layer takes a while: only when what the histogram shows changes.
    if (group == shownGroup_) return;
    shownGroup_ = group;
    if (group < 0) histogram_->setWeights(weights_);
    else  // the last group of a row may be shorter than the others
        histogram_->setWeights(weights_.data() + row_ * cols_ + column_ * groupSize_,
                               std::size_t(std::min(groupSize_, cols_ - column_ * groupSize_)));
}

void WeightsPage::clear() {
    layer_ = std::size_t(-1);
    weights_.clear();
    shownGroup_ = -2;
    showWeights(-1);
    histogram_->setLevels({});
    histogram_->setTitle(QString());
    group_->setRange(0, 0);
    hasLevels_ = false;
    group_->setEnabled(false);
    groupOnly_->setEnabled(false);
    info_->setText(tr("Pick a layer in the Model panel."));
}

void WeightsPage::showLayer(std::size_t layer) {
    if (!session_->hasModel() || layer >= session_->layers().size()) return clear();
    if (layer != layer_) {
        layer_ = layer;
        weights_ = session_->originalWeights(layer);
        shownGroup_ = -2;
        cols_ = session_->layers().at(layer).in_features;
        const QSignalBlocker block(group_);
        group_->setValue(0);
    }
    refresh();
}

void WeightsPage::refresh() {
    if (layer_ == std::size_t(-1)) return;
    const QuantizedTensor* q = session_->quantizedTensor(layer_);
    problem_.clear();
    groupSize_ = cols_;
    shownGroup_ = -2;  // a new result may group the columns differently
    if (q) {
        try {
            groupSize_ = group_columns(*q);
        } catch (const quench::Error& e) {  // a tensor whose spec does not fit its shape: say so, draw no lines
            problem_ = QString::fromStdString(e.what());
            q = nullptr;
        }
    }
    groupsPerRow_ = q ? groups_per_row(*q) : 1;
    {
        const QSignalBlocker block(group_);
        group_->setRange(0, q ? int(q->rows * groupsPerRow_ - 1) : 0);
    }
    hasLevels_ = q != nullptr;
    group_->setEnabled(hasLevels_);
    groupOnly_->setEnabled(hasLevels_);
    showGroup();
}

void WeightsPage::showGroup() {
    if (layer_ == std::size_t(-1)) return;
    const QString name = QString::fromStdString(session_->layers().at(layer_).name);
    const QuantizedTensor* q = hasLevels_ ? session_->quantizedTensor(layer_) : nullptr;
    if (!q) {
        showWeights(-1);
        histogram_->setLevels({});
        histogram_->setTitle(name);
        info_->setText(problem_.isEmpty() ? tr("Not quantized: quantize this layer to see its levels.") : problem_);
        return;
    }
    row_ = group_->value() / groupsPerRow_;
    column_ = group_->value() % groupsPerRow_;
    showWeights(groupOnly_->isChecked() && weights_.size() >= std::size_t((row_ + 1) * cols_) ? group_->value() : -1);
    const QString spec = QString::fromStdString(q->spec.to_string());
    try {
        const GroupLevels levels = group_levels(*q, row_, column_, kMaxLevels);
        histogram_->setLevels(levels.values);
        if (levels.grid) {
            histogram_->setTitle(tr("%1: levels of row %2, group %3").arg(name).arg(row_).arg(column_));
            info_->setText(tr("%1: row %2, group %3 of %4 per row: %5 levels, scale x (code - zero)")
                               .arg(spec).arg(row_).arg(column_).arg(groupsPerRow_).arg(levels.values.size()));
        } else {
            histogram_->setTitle(tr("%1: dequantized values of row %2").arg(name).arg(row_));
            info_->setText(tr("%1 has no per-group grid: %2 of the %3 distinct values row %4 dequantizes to")
                               .arg(spec).arg(levels.values.size()).arg(levels.distinct).arg(row_));
        }
    } catch (const quench::Error& e) {  // malformed parts (a tensor of another build): say so, draw no lines
        histogram_->setLevels({});
        histogram_->setTitle(name);
        info_->setText(QString::fromStdString(e.what()));
    }
}

}  // namespace quench::gui
