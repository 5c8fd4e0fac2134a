#pragma once
// The bit-allocation explorer: a budget slider and spin box (bits per weight or MB, switchable) that
// re-solve an AllocationProblem with the Lagrangian solver on every move (microseconds), and show the
// predicted KL, the size and a bar per layer of its bits per weight, coloured by codec (legend).
// The problem is built once per setSpec / setConstraints (the expensive, checked part); a spec or a
// budget that cannot be solved shows an inline message instead of the chart, never an exception.
#include <QString>
#include <QWidget>

#include <memory>
#include <vector>
#include <optional>

#include "alloc/allocation.h"
#include "alloc/allocation_problem.h"
#include "alloc/allocation_spec.h"
#include "analysis/sensitivity.h"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QSlider;
class QStackedLayout;

namespace quench::gui {

class LayerBarPlot;

enum class BudgetUnit {
    BitsPerWeight,  // average over every layer of the problem (excluded ones included)
    Megabytes,      // total bits / 8 / 1e6
};

class AllocationView : public QWidget {
    Q_OBJECT
public:
    explicit AllocationView(QWidget* parent = nullptr);
    ~AllocationView() override;
    AllocationView(const AllocationView&) = delete;
    AllocationView& operator=(const AllocationView&) = delete;

    // Layers, candidates and constraints; builds the problem and re-solves at the current budget (clamped
    // into the new slider range; the middle of it the first time). An invalid spec shows its error.
    void setSpec(AllocationSpec spec);
    // Replaces only the constraints (pins, min/max bits, tied groups, excluded kinds) of the current spec.
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
    QString message() const;  // the inline error/notice shown; empty when the allocation is shown

    // The per-layer bars, in the problem's layer order.
    int barCount() const;
    double barBitsPerWeight(int i) const;
    QString barLabel(int i) const;
    QString barCodec(int i) const;

    QSlider* slider() const { return slider_; }
    QDoubleSpinBox* spinBox() const { return spin_; }
    LayerBarPlot* barPlot() const { return plot_; }  // the per-layer bits chart (painted, not Qt Charts: speed)

signals:
    // After every successful re-solve (slider, spin box, setBudget*, setSpec, setConstraints).
    void allocationChanged(const quench::Allocation& allocation);

protected:
    void changeEvent(QEvent* e) override;  // follows light/dark palette switches

private:
    void rebuildProblem();
    void solveAt(const Budget& budget);
    void showMessage(const QString& text);
    void updateChart();
    void syncControls();
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

    QSlider* slider_ = nullptr;
    QDoubleSpinBox* spin_ = nullptr;
    QComboBox* unitBox_ = nullptr;
    QLabel* summary_ = nullptr;
    QLabel* message_ = nullptr;
    QStackedLayout* stack_ = nullptr;  // message label or the chart
    LayerBarPlot* plot_ = nullptr;
    std::vector<QString> codecOfBar_;  // codec of each layer's chosen setting
};

}  // namespace quench::gui
