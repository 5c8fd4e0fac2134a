#include "allocation_view.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QSlider>
#include <QStackedLayout>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <set>
#include <stdexcept>

#include "chart_style.h"
#include "layer_bar_plot.h"

namespace quench::gui {

namespace {
constexpr int kSliderSteps = 1000;
constexpr double kBytesPerMB = 1e6;

}  // namespace

AllocationView::AllocationView(QWidget* parent) : QWidget(parent) {
    slider_ = new QSlider(Qt::Horizontal, this);
    slider_->setRange(0, kSliderSteps);
    slider_->setToolTip(tr("Budget: from the cheapest allocation the constraints allow to the point beyond which "
                           "no layer gains. Every move re-solves the allocation."));
    spin_ = new QDoubleSpinBox(this);
    spin_->setKeyboardTracking(false);
    spin_->setToolTip(tr("Budget as a number; values outside the slider's range are allowed and explained"));
    unitBox_ = new QComboBox(this);
    unitBox_->addItem(tr("bits/weight"), int(BudgetUnit::BitsPerWeight));
    unitBox_->addItem(tr("MB"), int(BudgetUnit::Megabytes));
    unitBox_->setToolTip(tr("Average bits per weight over the layers of the problem, or their size in MB (10^6 bytes)"));
    summary_ = new QLabel(this);
    summary_->setWordWrap(true);  // one long line would widen the tab beyond the space the docks leave it
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    summary_->setToolTip(tr("Predicted KL: sum of the chosen settings' measured (or proxy) KL, in nats per token. "
                            "Size: the quantized layers' total bits / 8."));
    message_ = new QLabel(this);
    message_->setWordWrap(true);
    message_->setAlignment(Qt::AlignCenter);
    message_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    QFont bold = message_->font();  // the message replaces the chart: it must read as the main content
    bold.setBold(true);
    message_->setFont(bold);

    connect(slider_, &QSlider::valueChanged, this, [this](int pos) {
        if (syncing_ || !problem_) return;
        budgetBpw_ = sliderToBpw(pos);
        syncing_ = true;
        spin_->setValue(bpwToUnit(budgetBpw_));
        syncing_ = false;
        solveAt(Budget::bits_per_weight(budgetBpw_));
    });
    connect(spin_, qOverload<double>(&QDoubleSpinBox::valueChanged), this, [this](double v) {
        if (syncing_ || !problem_) return;
        if (unit_ == BudgetUnit::Megabytes) setBudgetBytes(v * kBytesPerMB);
        else setBudgetBitsPerWeight(v);
    });
    connect(unitBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setBudgetUnit(BudgetUnit(unitBox_->itemData(i).toInt())); });

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Budget:"), this));
    controls->addWidget(slider_, 1);
    controls->addWidget(spin_);
    controls->addWidget(unitBox_);

    plot_ = new LayerBarPlot(this);
    plot_->setToolTip(tr("Bits per weight the allocation gives each layer, coloured by codec"));
    plot_->setToolTipProvider([this](int i) -> QString {
        if (!allocation_ || i >= int(allocation_->layers.size())) return {};
        const LayerChoice& c = allocation_->layers[size_t(i)];
        return tr("<b>%1</b><br>%2%3<br>%4 bits/weight, predicted KL %5 nats/token")
            .arg(QString::fromStdString(c.name).toHtmlEscaped(), QString::fromStdString(c.spec).toHtmlEscaped(),
                 c.pinned ? tr(" (pinned)") : QString(), formatValue(c.bits_per_weight), formatValue(c.cost));
    });
    stack_ = new QStackedLayout;
    stack_->addWidget(message_);
    stack_->addWidget(plot_);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addWidget(summary_);
    layout->addLayout(stack_, 1);
    rebuildProblem();
}

AllocationView::~AllocationView() = default;

void AllocationView::setSpec(AllocationSpec spec) {
    spec_ = std::move(spec);
    rebuildProblem();
}

void AllocationView::setConstraints(AllocConstraints constraints) {
    spec_.constraints = std::move(constraints);
    rebuildProblem();
}

void AllocationView::setMeasurements(const Measurements& m, CostSource source) {
    try {
        setSpec(to_allocation_spec(m, source));
    } catch (const std::exception& e) {
        spec_ = {};
        problem_.reset();
        allocation_.reset();
        showMessage(tr("No allocation: %1").arg(QString::fromStdString(e.what())));
    }
}

const Allocation& AllocationView::allocation() const {
    if (!allocation_) throw std::logic_error("AllocationView::allocation: no allocation");
    return *allocation_;
}

double AllocationView::minBitsPerWeight() const { return problem_ ? problem_->min_bits_per_weight() : 0; }
double AllocationView::maxBitsPerWeight() const {
    if (!problem_) return 0;
    // A problem whose every layer has one option has an empty range; widen it so the slider stays usable.
    return std::max(problem_->max_useful_bits_per_weight(), problem_->min_bits_per_weight() + 1e-3);
}

double AllocationView::sliderToBpw(int pos) const {
    return minBitsPerWeight() + (maxBitsPerWeight() - minBitsPerWeight()) * double(pos) / kSliderSteps;
}
int AllocationView::bpwToSlider(double bpw) const {
    if (!problem_) return 0;
    const double t = (bpw - minBitsPerWeight()) / (maxBitsPerWeight() - minBitsPerWeight());
    return int(std::lround(std::clamp(t, 0.0, 1.0) * kSliderSteps));
}
double AllocationView::bpwToUnit(double bpw) const {
    if (unit_ == BudgetUnit::BitsPerWeight || !problem_) return bpw;
    return bpw * double(problem_->total_weights()) / 8.0 / kBytesPerMB;
}
double AllocationView::unitToBpw(double v) const {
    if (unit_ == BudgetUnit::BitsPerWeight || !problem_) return v;
    return v * kBytesPerMB * 8.0 / double(problem_->total_weights());
}

double AllocationView::budgetBitsPerWeight() const { return budgetBpw_; }

void AllocationView::setBudgetBitsPerWeight(double bpw) {
    budgetBpw_ = bpw;
    syncControls();
    if (problem_) solveAt(Budget::bits_per_weight(bpw));
}

void AllocationView::setBudgetBytes(double bytes) {
    if (!problem_) return;
    budgetBpw_ = bytes * 8.0 / double(problem_->total_weights());
    syncControls();
    solveAt(Budget::bytes(bytes));
}

void AllocationView::setBudgetUnit(BudgetUnit unit) {
    unit_ = unit;
    syncControls();
}

void AllocationView::syncControls() {
    syncing_ = true;
    unitBox_->setCurrentIndex(unitBox_->findData(int(unit_)));
    const bool mb = unit_ == BudgetUnit::Megabytes;
    spin_->setDecimals(mb ? 3 : 3);
    spin_->setSuffix(mb ? tr(" MB") : tr(" b/w"));
    // The spin box accepts values outside the slider range (down to 0 and up to fp32): the message explains.
    spin_->setRange(0, bpwToUnit(std::max(32.0, maxBitsPerWeight())));
    spin_->setSingleStep(mb ? std::max(1e-3, bpwToUnit(0.01)) : 0.01);
    spin_->setValue(bpwToUnit(budgetBpw_));
    slider_->setValue(bpwToSlider(budgetBpw_));
    syncing_ = false;
}

void AllocationView::showMessage(const QString& text) {
    message_->setText(text);
    summary_->clear();
    stack_->setCurrentIndex(0);
}

QString AllocationView::message() const { return stack_->currentIndex() == 0 ? message_->text() : QString(); }

void AllocationView::rebuildProblem() {
    allocation_.reset();
    problem_.reset();
    codecOfBar_.clear();
    plot_->setBars({}, {});
    slider_->setEnabled(false);
    spin_->setEnabled(false);
    if (spec_.layers.empty()) {
        showMessage(tr("No data: measure the layers' sensitivity to explore bit allocations here."));
        return;
    }
    try {
        problem_ = std::make_unique<AllocationProblem>(spec_);
    } catch (const std::exception& e) {
        showMessage(tr("Cannot set up the allocation: %1").arg(QString::fromStdString(e.what())));
        return;
    }
    slider_->setEnabled(true);
    spin_->setEnabled(true);

    // Legend: every codec any candidate (or an excluded layer) uses, so it does not change while sliding; the
    // y axis is fixed to the richest candidate for the same reason.
    std::vector<std::pair<QString, QColor>> legend;
    double yMax = 0;
    auto addCodec = [&](const QString& c) {
        for (const auto& e : legend)
            if (e.first == c) return;
        legend.emplace_back(c, codecColor(c));
    };
    for (const AllocLayer& l : spec_.layers) {
        if (spec_.constraints.excluded_kinds.count(l.kind)) {
            addCodec(QStringLiteral("fp%1").arg(spec_.constraints.excluded_bits_per_weight));
            yMax = std::max(yMax, spec_.constraints.excluded_bits_per_weight);
            continue;
        }
        for (const AllocCandidate& c : l.candidates) {
            addCodec(codecOfSpec(c.spec));
            yMax = std::max(yMax, c.bits_per_weight + (l.weights > 0 ? c.extra_bits / double(l.weights) : 0));
        }
    }
    QStringList labels;
    for (const AllocLayer& l : spec_.layers) labels << shortLayerName(l.name);
    plot_->setLabels(labels);
    plot_->setLegend(std::move(legend));
    plot_->setYAxis(std::ceil(yMax > 0 ? yMax : 1), tr("bits per weight"));

    // Keep the user's budget across constraint edits, clamped into the new range; start in the middle.
    const double lo = minBitsPerWeight(), hi = maxBitsPerWeight();
    budgetBpw_ = budgetBpw_ > 0 ? std::clamp(budgetBpw_, lo, hi) : 0.5 * (lo + hi);
    setBudgetBitsPerWeight(budgetBpw_);
}

void AllocationView::solveAt(const Budget& budget) {
    try {
        allocation_ = problem_->solve_lagrangian(budget);
    } catch (const std::exception& e) {
        allocation_.reset();
        showMessage(tr("Infeasible budget: %1").arg(QString::fromStdString(e.what())));
        return;
    }
    updateChart();
    stack_->setCurrentIndex(1);
    emit allocationChanged(*allocation_);
}

void AllocationView::updateChart() {
    const Allocation& a = *allocation_;
    summary_->setText(tr("Predicted KL <b>%1</b> nats/token · size <b>%2 MB</b> · <b>%3</b> bits/weight "
                         "(budget %4) · λ = %5 per bit")
                          .arg(formatValue(a.total_cost), QString::number(a.bytes / kBytesPerMB, 'f', 3),
                               QString::number(a.bits_per_weight, 'f', 3), QString::number(budgetBpw_, 'f', 3),
                               formatValue(a.lambda)));
    std::vector<double> values(a.layers.size());
    std::vector<QColor> colors(a.layers.size());
    codecOfBar_.resize(a.layers.size());
    for (size_t i = 0; i < a.layers.size(); ++i) {
        codecOfBar_[i] = codecOfSpec(a.layers[i].spec);
        values[i] = a.layers[i].bits_per_weight;
        colors[i] = codecColor(codecOfBar_[i]);
    }
    plot_->setBars(std::move(values), std::move(colors));
}

int AllocationView::barCount() const { return allocation_ ? int(allocation_->layers.size()) : 0; }
double AllocationView::barBitsPerWeight(int i) const { return plot_->value(i); }
QString AllocationView::barLabel(int i) const { return QString::fromStdString(spec_.layers.at(size_t(i)).name); }
QString AllocationView::barCodec(int i) const { return codecOfBar_.at(size_t(i)); }

void AllocationView::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) plot_->update();
}

}  // namespace quench::gui
