#pragma once
// Live QAT curves: training loss and held-out KL against the step. Points arrive from the training job's
// progress callbacks at any rate; they are buffered and the chart is updated at most once per kRefreshMs
// (a timer), so a fast loop does not repaint per point.
#include <QPointF>
#include <QWidget>

#include <cstdint>
#include <vector>

class QChartView;
class QLineSeries;
class QStackedLayout;
class QTimer;
class QValueAxis;

namespace quench::gui {

class TrainingCurves : public QWidget {
    Q_OBJECT
public:
    explicit TrainingCurves(QWidget* parent = nullptr);
    static constexpr int kRefreshMs = 33;

    void appendPoint(int64_t step, double loss);  // training loss (nats/token); non-finite values are dropped
    void appendKl(int64_t step, double kl);       // held-out KL from the full-precision model (nats/token)
    void clear();
    void flush();  // applies the buffered points now (the timer does this by itself)

    int lossPointCount() const { return int(loss_.size()); }  // applied to the chart
    int klPointCount() const { return int(kl_.size()); }
    QPointF lossPoint(int i) const { return loss_.at(size_t(i)); }
    QPointF klPoint(int i) const { return kl_.at(size_t(i)); }
    int pendingCount() const { return int(pendingLoss_.size() + pendingKl_.size()); }
    int updateCount() const { return updates_; }  // chart updates so far (throttling check)
    bool showsNoData() const { return loss_.empty() && kl_.empty(); }
    QChartView* chartView() const { return view_; }

protected:
    void changeEvent(QEvent* e) override;  // follows light/dark palette switches

private:
    void schedule();

    std::vector<QPointF> loss_, kl_, pendingLoss_, pendingKl_;
    double stepMax_ = 1, lossMax_ = 0, klMax_ = 0;
    int updates_ = 0;
    QTimer* timer_ = nullptr;
    QLineSeries* lossSeries_ = nullptr;
    QLineSeries* klSeries_ = nullptr;
    QValueAxis* stepAxis_ = nullptr;
    QValueAxis* lossAxis_ = nullptr;
    QValueAxis* klAxis_ = nullptr;
    QChartView* view_ = nullptr;
    QStackedLayout* stack_ = nullptr;
};

}  // namespace quench::gui
