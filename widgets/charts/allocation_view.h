#pragma once
// The bit-allocation explorer: a budget slider and spin box (bits per weight or MB, switchable) that
// re-solve an AllocationProblem with the Lagrangian solver on every move (microseconds), and show the
// predicted KL, the size and a bar per layer of its bits per weight, coloured by codec (legend).
// The problem is built once per setSpec / setConstraints (the expensive, checked part); a spec or a
// budget that cannot be solved shows an inline message instead of the chart, never an exception.
//
// The budget is the user's: new constraints never move it. When pins or bit limits need more than it, the
// view says so and by how much, and offers one click to raise it. Apply sends the allocation shown; once
// applied and evaluated, its predicted KL is shown next to the measured one. The bars are AllocationBars:
// at real model sizes (224 layers and more) they scroll sideways under a per-block overview.
#include <QString>
#include <QWidget>

#include <memory>
#include <optional>
#include <vector>

#include "alloc/allocation.h"
#include "alloc/allocation_problem.h"
#include "alloc/allocation_spec.h"
#include "jobs/sensitivity.h"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QScrollArea;
class QSlider;
class QStackedLayout;

namespace quench::gui {

class AllocationBars;
class LayerBarPlot;

enum class BudgetUnit {
    BitsPerWeight,  // average over every layer of the problem (excluded ones included)
    Megabytes,      // MiB: total bits / 8 / 2^20
};

class AllocationView : public QWidget {
    Q_OBJECT
public:
    explicit AllocationView(QWidget* parent = nullptr);
    ~AllocationView() override;
    AllocationView(const AllocationView&) = delete;
    AllocationView& operator=(const AllocationView&) = delete;

    // Layers, candidates and constraints; builds the problem and re-solves at the current budget (the middle
    // of the slider range the first time, or after an empty spec). An invalid spec shows its error.
    void setSpec(AllocationSpec spec);
    // Replaces only the constraints (pins, min/max bits, tied groups, excluded kinds) of the current spec.
    // The budget stays as it is, even when the constraints now need more (the view then says so).
    void setConstraints(AllocConstraints constraints);
    // Convenience: setSpec(to_allocation_spec(m, source)); a Measurements without usable points shows
    // to_allocation_spec's error.
    void setMeasurements(const Measurements& m, CostSource source);
    const AllocationSpec& spec() const { return spec_; }

    // Moves the slider/spin box there and re-solves at once (as a user move does). Values outside the slider
    // range are kept in the spin box (so an infeasible budget shows its message).
    void setBudgetBitsPerWeight(double bpw);
    void setBudgetBytes(double bytes);
    double budgetBitsPerWeight() const;  // the current budget, in bits per weight
    void setBudgetUnit(BudgetUnit unit);
    BudgetUnit budgetUnit() const { return unit_; }

    // The slider range: cheapest allocation the constraints allow .. the bits beyond which nothing improves.
    double minBitsPerWeight() const;
    double maxBitsPerWeight() const;

    bool hasAllocation() const { return allocation_.has_value(); }
    const Allocation& allocation() const;  // precondition: hasAllocation()
    const AllocationProblem* problem() const { return problem_.get(); }
    QString message() const;            // the inline error/notice shown; empty when the allocation is shown
    QString unavailableReason() const;  // why there is no allocation, as the status bar says it; empty if there is one
    QString summaryText() const;        // the line above the chart (predicted KL, size, shared parts)

    // Apply: enabled only with an allocation and when setApplyAvailable allows (a model to quantize).
    void setApplyAvailable(bool available, const QString& whyNot = QString());
    // The allocation that was applied to the model (Apply or Run > Apply Allocation), for the predicted vs
    // measured line; the measured KL arrives once the model with it is evaluated.
    void setApplied(const Allocation& applied);
    void clearApplied();
    const Allocation* applied() const { return applied_ ? &*applied_ : nullptr; }
    void setMeasuredKl(double klMean);  // nats per token, of the model with applied() in place
    void clearMeasuredKl();
    QString comparisonText() const;  // "Applied allocation (...): predicted 0.94 / measured 1.26 nats ..."

    // The per-layer bars, in the problem's layer order.
    int barCount() const;
    double barBitsPerWeight(int i) const;
    QString barLabel(int i) const;
    QString barCodec(int i) const;
    // The per-block overview (AllocationBars): shown when the layers do not all fit the width legibly.
    int blockCount() const;
    double blockBitsPerWeight(int g) const;
    bool overviewShown() const;
    void scrollToBlock(int g);

    QSlider* slider() const { return slider_; }
    QDoubleSpinBox* spinBox() const { return spin_; }
    QPushButton* applyButton() const { return apply_; }
    QPushButton* raiseButton() const { return raise_; }  // "raise the budget to what the constraints need"
    LayerBarPlot* barPlot() const;  // the per-layer bits chart (painted, not Qt Charts: speed)
    LayerBarPlot* blockPlot() const;
    QScrollArea* barScroll() const;

signals:
    // After every successful re-solve (slider, spin box, setBudget*, setSpec, setConstraints).
    void allocationChanged(const quench::Allocation& allocation);
    // When a re-solve or a new spec leaves no allocation (infeasible budget, contradicting constraints, no
    // data); reason is unavailableReason(). Listeners must drop the allocation they kept.
    void allocationUnavailable(const QString& reason);
    // The Apply button: quantize the model with this allocation.
    void applyRequested(const quench::Allocation& allocation);

private:
    void rebuildProblem();
    void solveAt(const Budget& budget);
    void showMessage(const QString& text, const QString& reason);
    void showInfeasible();
    void updateChart();
    void updateApply();
    void updateComparison();
    void syncControls();
    QString formatBudget(double bpw) const;  // in the current unit: "2.820 b/w" or "0.115 MB"
    double sliderToBpw(int pos) const;
    int bpwToSlider(double bpw) const;
    double bpwToUnit(double bpw) const;
    double unitToBpw(double v) const;

    AllocationSpec spec_;
    std::unique_ptr<AllocationProblem> problem_;
    std::optional<Allocation> allocation_;
    double budgetBpw_ = 0;
    BudgetUnit unit_ = BudgetUnit::BitsPerWeight;
    bool syncing_ = false;  // controls being set by code: their signals must not re-solve
    QString unavailable_;

    QString infeasibleError_;  // core's message of the last infeasible solve; empty after a feasible one
    std::optional<double> freeMinBpw_;  // cheapest allocation without pins and bit limits, computed on demand

    bool applyAvailable_ = true;
    QString applyWhyNot_;
    std::optional<Allocation> applied_;
    std::optional<double> measuredKl_;

    QSlider* slider_ = nullptr;
    QDoubleSpinBox* spin_ = nullptr;
    QComboBox* unitBox_ = nullptr;
    QPushButton* apply_ = nullptr;
    QLabel* summary_ = nullptr;
    QLabel* comparison_ = nullptr;
    QLabel* message_ = nullptr;
    QPushButton* raise_ = nullptr;
    QStackedLayout* stack_ = nullptr;  // message page or the chart
    AllocationBars* bars_ = nullptr;
};

}  // namespace quench::gui
