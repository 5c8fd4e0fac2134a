#include "allocation_view.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSlider>
#include <QStackedLayout>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>

#include "chart_style.h"
#include "allocation_bars.h"
#include "layer_bar_plot.h"

namespace quench::gui {

namespace {
constexpr int kSliderSteps = 1000;
constexpr double kBytesPerMiB = 1024.0 * 1024.0;  // sizes in binary units everywhere in the GUI
constexpr double kSpinScale = 1000;  // the spin box shows 3 decimals in either unit

// Rounded up to what the spin box can show, so "needs at least X" and "raise to X" agree and X suffices.
double ceilToSpin(double v) { return std::ceil(v * kSpinScale - 1e-6) / kSpinScale; }

bool hasBitLimits(const AllocConstraints& c) {
    return !c.layer_limits.empty() || c.limits.min_bits_per_weight > 0 || std::isfinite(c.limits.max_bits_per_weight);
}
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
    unitBox_->addItem(tr("MiB"), int(BudgetUnit::Megabytes));
    unitBox_->setToolTip(tr("Average bits per weight over the layers of the problem, or their size in MiB (2^20 bytes)"));
    apply_ = new QPushButton(tr("Apply"), this);
    summary_ = new QLabel(this);
    summary_->setWordWrap(true);  // one long line would widen the tab beyond the space the docks leave it
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    summary_->setToolTip(tr("Predicted KL: sum of the chosen settings' measured (or proxy) KL, in nats per token. "
                            "Size: the quantized layers' total bits / 8, shared parts (paid once) included."));
    comparison_ = new QLabel(this);
    comparison_->setWordWrap(true);
    comparison_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    comparison_->setToolTip(tr("The allocation applied to the model: the KL its measurements predicted (a sum over "
                               "layers, blind to their interactions) against the KL measured on the evaluation text"));
    comparison_->hide();
    message_ = new QLabel(this);
    message_->setWordWrap(true);
    message_->setAlignment(Qt::AlignCenter);
    message_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    QFont bold = message_->font();  // the message replaces the chart: it must read as the main content
    bold.setBold(true);
    message_->setFont(bold);
    raise_ = new QPushButton(this);
    raise_->setToolTip(tr("Set the budget to the least the layers and their constraints allow"));
    raise_->hide();

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
        if (unit_ == BudgetUnit::Megabytes) setBudgetBytes(v * kBytesPerMiB);
        else setBudgetBitsPerWeight(v);
    });
    connect(unitBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setBudgetUnit(BudgetUnit(unitBox_->itemData(i).toInt())); });
    connect(apply_, &QPushButton::clicked, this, [this] {
        if (allocation_ && applyAvailable_) emit applyRequested(*allocation_);
    });
    connect(raise_, &QPushButton::clicked, this, [this] {
        if (!problem_) return;
        // The least budget in the unit shown, rounded up to the spin box's 3 decimals: always feasible.
        if (unit_ == BudgetUnit::Megabytes)
            setBudgetBytes(ceilToSpin(double(problem_->min_bits()) / 8.0 / kBytesPerMiB) * kBytesPerMiB);
        else setBudgetBitsPerWeight(ceilToSpin(problem_->min_bits_per_weight()));
    });

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Budget:"), this));
    controls->addWidget(slider_, 1);
    controls->addWidget(spin_);
    controls->addWidget(unitBox_);
    controls->addWidget(apply_);

    bars_ = new AllocationBars(this);

    auto* messagePage = new QWidget(this);
    auto* messageLayout = new QVBoxLayout(messagePage);
    messageLayout->addStretch(1);
    messageLayout->addWidget(message_);
    messageLayout->addWidget(raise_, 0, Qt::AlignHCenter);
    messageLayout->addStretch(1);
    stack_ = new QStackedLayout;
    stack_->addWidget(messagePage);
    stack_->addWidget(bars_);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addWidget(summary_);
    layout->addWidget(comparison_);
    layout->addLayout(stack_, 1);
    rebuildProblem();
}

AllocationView::~AllocationView() = default;

void AllocationView::setSpec(AllocationSpec spec) {
    spec_ = std::move(spec);
    if (spec_.layers.empty()) budgetBpw_ = 0;  // the next data (another model, say) starts mid-range again
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
        budgetBpw_ = 0;
        showMessage(tr("No allocation: %1").arg(QString::fromStdString(e.what())),
                    tr("none: %1").arg(QString::fromStdString(e.what())));
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
    return bpw * double(problem_->total_weights()) / 8.0 / kBytesPerMiB;
}
double AllocationView::unitToBpw(double v) const {
    if (unit_ == BudgetUnit::BitsPerWeight || !problem_) return v;
    return v * kBytesPerMiB * 8.0 / double(problem_->total_weights());
}
QString AllocationView::formatBudget(double bpw) const {
    return unit_ == BudgetUnit::Megabytes ? tr("%1 MiB").arg(bpwToUnit(bpw), 0, 'f', 3) : tr("%1 b/w").arg(bpw, 0, 'f', 3);
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
    if (problem_ && !allocation_ && !infeasibleError_.isEmpty()) showInfeasible();  // its numbers in the new unit
}

void AllocationView::syncControls() {
    syncing_ = true;
    unitBox_->setCurrentIndex(unitBox_->findData(int(unit_)));
    const bool mb = unit_ == BudgetUnit::Megabytes;
    spin_->setDecimals(3);
    spin_->setSuffix(mb ? tr(" MiB") : tr(" b/w"));
    // The spin box accepts values outside the slider range (down to 0 and up to fp32): the message explains.
    spin_->setRange(0, bpwToUnit(std::max(32.0, maxBitsPerWeight())));
    spin_->setSingleStep(mb ? std::max(1e-3, bpwToUnit(0.01)) : 0.01);
    spin_->setValue(bpwToUnit(budgetBpw_));
    slider_->setValue(bpwToSlider(budgetBpw_));
    syncing_ = false;
}

void AllocationView::showMessage(const QString& text, const QString& reason) {
    message_->setText(text);
    raise_->hide();
    summary_->clear();
    stack_->setCurrentIndex(0);
    unavailable_ = reason;
    updateApply();
    emit allocationUnavailable(reason);
}

QString AllocationView::message() const { return stack_->currentIndex() == 0 ? message_->text() : QString(); }
QString AllocationView::unavailableReason() const { return allocation_ ? QString() : unavailable_; }
QString AllocationView::summaryText() const { return summary_->text(); }

void AllocationView::rebuildProblem() {
    allocation_.reset();
    problem_.reset();
    freeMinBpw_.reset();
    infeasibleError_.clear();
    bars_->setLayers(spec_.layers, {}, 1);
    slider_->setEnabled(false);
    spin_->setEnabled(false);
    if (spec_.layers.empty()) {
        showMessage(tr("No data: measure the layers' sensitivity to explore bit allocations here."),
                    tr("none (no sensitivity measurements)"));
        return;
    }
    try {
        problem_ = std::make_unique<AllocationProblem>(spec_);
    } catch (const std::exception& e) {
        const QString what = QString::fromStdString(e.what());
        showMessage(tr("Cannot set up the allocation: %1").arg(what), tr("cannot be set up: %1").arg(what));
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
    bars_->setLayers(spec_.layers, std::move(legend), std::ceil(yMax > 0 ? yMax : 1));

    // The user's budget stays what it was, whatever the new constraints need (an infeasible one says so and
    // offers to raise it); only the first data starts mid-range.
    if (budgetBpw_ <= 0) budgetBpw_ = 0.5 * (minBitsPerWeight() + maxBitsPerWeight());
    setBudgetBitsPerWeight(budgetBpw_);
}

void AllocationView::solveAt(const Budget& budget) {
    try {
        allocation_ = problem_->solve_lagrangian(budget);
    } catch (const std::exception& e) {
        allocation_.reset();
        bars_->clear();
        infeasibleError_ = QString::fromStdString(e.what());
        showInfeasible();
        return;
    }
    infeasibleError_.clear();
    unavailable_.clear();
    raise_->hide();
    updateChart();
    stack_->setCurrentIndex(1);
    updateApply();
    emit allocationChanged(*allocation_);
}

// Says what the budget lacks and why, in the unit shown: the constraints' doing (pins, bit limits) when the
// same layers without them would fit the budget, else the layers' own cheapest settings.
void AllocationView::showInfeasible() {
    const double need = problem_->min_bits_per_weight();
    QString cause;
    if (!spec_.constraints.pins.empty() || hasBitLimits(spec_.constraints)) {
        if (!freeMinBpw_) {
            AllocationSpec free = spec_;
            free.constraints.pins.clear();
            free.constraints.layer_limits.clear();
            free.constraints.limits = {};
            try {
                freeMinBpw_ = AllocationProblem(std::move(free)).min_bits_per_weight();
            } catch (const std::exception&) {
                freeMinBpw_ = need;  // cannot tell: name no cause
            }
        }
        if (*freeMinBpw_ <= budgetBpw_ && *freeMinBpw_ < need) {
            const bool pins = !spec_.constraints.pins.empty(), limits = hasBitLimits(spec_.constraints);
            cause = pins && limits ? tr("pins and bit limits") : pins ? tr("pins") : tr("bit limits");
        }
    }
    const double needShown = unitToBpw(ceilToSpin(bpwToUnit(need)));
    const QString needText = formatBudget(needShown), budgetText = formatBudget(budgetBpw_);
    const QString text = cause.isEmpty()
        ? tr("Infeasible budget: %1 is below the least any allocation of these layers needs, %2.")
              .arg(budgetText, needText)
        : tr("Infeasible: the %1 need at least %2; the budget is %3.\nThe budget stays as you set it: raise it, "
             "or remove %1.").arg(cause, needText, budgetText);
    const QString reason = cause.isEmpty()
        ? tr("infeasible: the budget %1 is below the least possible, %2").arg(budgetText, needText)
        : tr("infeasible: %1 need at least %2 (budget %3)").arg(cause, needText, budgetText);
    showMessage(text + QStringLiteral("\n\n") + infeasibleError_, reason);
    raise_->setText(tr("Raise budget to %1").arg(needText));
    raise_->show();
}

void AllocationView::updateChart() {
    const Allocation& a = *allocation_;
    QString summary = tr("Predicted KL <b>%1</b> nats/token · size <b>%2 MiB</b> · <b>%3</b> bits/weight "
                         "(budget %4) · λ = %5 per bit")
                          .arg(formatValue(a.total_cost), QString::number(a.bytes / kBytesPerMiB, 'f', 3),
                               QString::number(a.bits_per_weight, 'f', 3), QString::number(budgetBpw_, 'f', 3),
                               formatValue(a.lambda));
    // The bars leave out parts stored once per model (a LiftQuant lift matrix): name them so that the bars
    // plus these bits are the total.
    if (a.shared_bits > 0) {
        QStringList keys;
        for (const std::string& k : a.shared_keys) keys << QString::fromStdString(k).toHtmlEscaped();
        summary += tr(" · incl. %1 bits of shared matrices (%2)").arg(a.shared_bits).arg(keys.join(QStringLiteral(", ")));
    }
    summary_->setText(summary);
    bars_->setAllocation(a);
}

bool AllocationView::overviewShown() const { return bars_->overviewShown(); }
int AllocationView::blockCount() const { return bars_->blockCount(); }
double AllocationView::blockBitsPerWeight(int g) const { return bars_->blockBitsPerWeight(g); }
void AllocationView::scrollToBlock(int g) { bars_->scrollToBlock(g); }
LayerBarPlot* AllocationView::barPlot() const { return bars_->layerPlot(); }
LayerBarPlot* AllocationView::blockPlot() const { return bars_->blockPlot(); }
QScrollArea* AllocationView::barScroll() const { return bars_->layerScroll(); }

void AllocationView::setApplyAvailable(bool available, const QString& whyNot) {
    applyAvailable_ = available;
    applyWhyNot_ = whyNot;
    updateApply();
}

void AllocationView::updateApply() {
    const bool ok = allocation_ && applyAvailable_;
    apply_->setEnabled(ok);
    // Disabled, it says why: first what the tab lacks (the allocation), then what the window lacks (a model).
    if (ok)
        apply_->setToolTip(tr("Quantize every layer with the setting shown (as Run > Apply Allocation); with "
                              "evaluation text set, the measured KL appears here next to the predicted one"));
    else if (!allocation_)
        apply_->setToolTip(tr("Nothing to apply: the allocation is %1").arg(unavailable_));
    else
        apply_->setToolTip(applyWhyNot_);
}

void AllocationView::setApplied(const Allocation& applied) {
    applied_ = applied;
    measuredKl_.reset();
    updateComparison();
}

void AllocationView::clearApplied() {
    applied_.reset();
    measuredKl_.reset();
    updateComparison();
}

void AllocationView::setMeasuredKl(double klMean) {
    measuredKl_ = klMean;
    updateComparison();
}

void AllocationView::clearMeasuredKl() {
    measuredKl_.reset();
    updateComparison();
}

QString AllocationView::comparisonText() const { return comparison_->isVisibleTo(this) ? comparison_->text() : QString(); }

void AllocationView::updateComparison() {
    comparison_->setVisible(applied_.has_value());
    if (!applied_) return comparison_->clear();
    const Allocation& a = *applied_;
    const QString head = tr("Applied allocation (%1 b/w):").arg(a.bits_per_weight, 0, 'f', 3);
    comparison_->setText(measuredKl_
                             ? tr("%1 predicted %2 / measured %3 nats per token")
                                   .arg(head, formatValue(a.total_cost), formatValue(*measuredKl_))
                             : tr("%1 predicted %2 nats per token; measured once the model is evaluated (Ctrl+K, "
                                  "or evaluation text set before applying)")
                                   .arg(head, formatValue(a.total_cost)));
}

int AllocationView::barCount() const { return allocation_ ? int(allocation_->layers.size()) : 0; }
double AllocationView::barBitsPerWeight(int i) const { return bars_->layerPlot()->value(i); }
QString AllocationView::barLabel(int i) const { return QString::fromStdString(spec_.layers.at(size_t(i)).name); }
QString AllocationView::barCodec(int i) const { return bars_->codecOf(i); }

}  // namespace quench::gui
