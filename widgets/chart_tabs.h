#pragma once
// The window's central views: one tab per chart of widgets/charts (distortion bars, sensitivity heatmap,
// rate-distortion, allocation explorer, weight histogram, training curves, per-token KL) plus the results
// browser, each fed from the session's signals.
#include <QTabWidget>

#include <memory>

namespace quench {
struct Allocation;
}

namespace quench::gui {

class AllocationView;
class DistortionChart;
class RateDistortionChart;
class SensitivityHeatmap;
class TokenKlView;
class TrainingCurves;
class WeightHistogram;
class WeightsPage;
class WorkbenchSession;

class ChartTabs : public QTabWidget {
    Q_OBJECT

public:
    ChartTabs(WorkbenchSession* session, QWidget* parent = nullptr);
    ~ChartTabs() override;

    DistortionChart* distortion() const { return distortion_; }
    AllocationView* allocation() const { return allocation_; }
    SensitivityHeatmap* sensitivity() const { return sensitivity_; }
    RateDistortionChart* rateDistortion() const { return rateDistortion_; }
    WeightHistogram* weights() const { return weights_; }
    WeightsPage* weightsPage() const { return weightsPage_; }
    TrainingCurves* training() const { return training_; }
    TokenKlView* tokenKl() const { return tokenKl_; }

    // Brings the tab holding a chart (or any page, such as Results) to the front.
    void showChart(QWidget* chart);
    bool isShown(QWidget* chart) const;

    // The Weights tab shows this layer's original weights (the model panel's current layer) and, once it
    // is quantized, the levels of one of its groups.
    void showLayerWeights(std::size_t layer);
    static constexpr std::size_t kMaxKlTokens = 2000;

    // The allocation shown last (the budget slider's latest solve); nullptr before any.
    const quench::Allocation* currentAllocation() const { return allocation_result_.get(); }

signals:
    void allocationChanged(double bitsPerWeight, double predictedKl, double bytes);
    // The Allocation tab has no allocation (AllocationView::unavailableReason(): "infeasible: pins need ...").
    void allocationUnavailable(const QString& reason);

private:
    void addChartTab(QWidget* chart, const QString& title);
    QWidget* pageOf(QWidget* chart) const;
    void refreshDistortion();
    void refreshSensitivity();
    void refreshConstraints();
    void refreshKl();
    void refreshTraining();  // the finished QAT run's whole curve

    WorkbenchSession* session_;
    DistortionChart* distortion_ = nullptr;
    AllocationView* allocation_ = nullptr;
    SensitivityHeatmap* sensitivity_ = nullptr;
    RateDistortionChart* rateDistortion_ = nullptr;
    WeightHistogram* weights_ = nullptr;
    WeightsPage* weightsPage_ = nullptr;
    TrainingCurves* training_ = nullptr;
    TokenKlView* tokenKl_ = nullptr;
    bool klDirty_ = false;  // a KL report arrived while the Token KL tab was hidden
    std::shared_ptr<quench::Allocation> allocation_result_;
};

}  // namespace quench::gui
