#include "training_curves.h"

#include <QEvent>
#include <QStackedLayout>
#include <QTimer>
#include <QVBoxLayout>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLineSeries>
#include <QtCharts/QValueAxis>

#include <algorithm>
#include <cmath>

#include "chart_style.h"

namespace quench::gui {

TrainingCurves::TrainingCurves(QWidget* parent) : QWidget(parent) {
    timer_ = new QTimer(this);
    timer_->setSingleShot(true);
    timer_->setInterval(kRefreshMs);
    connect(timer_, &QTimer::timeout, this, &TrainingCurves::flush);

    auto* chart = new QChart;
    chart->setAnimationOptions(QChart::NoAnimation);
    chart->legend()->setAlignment(Qt::AlignTop);
    lossSeries_ = new QLineSeries;
    lossSeries_->setName(tr("training loss"));
    lossSeries_->setPen(QPen(QColor(0x4e, 0x79, 0xa7), 2));
    klSeries_ = new QLineSeries;
    klSeries_->setName(tr("held-out KL"));
    klSeries_->setPen(QPen(QColor(0xf2, 0x8e, 0x2b), 2));
    klSeries_->setPointsVisible(true);
    chart->addSeries(lossSeries_);
    chart->addSeries(klSeries_);
    stepAxis_ = new QValueAxis;
    stepAxis_->setTitleText(tr("step"));
    stepAxis_->setLabelFormat(QStringLiteral("%d"));
    lossAxis_ = new QValueAxis;
    lossAxis_->setTitleText(tr("loss, nats/token"));
    klAxis_ = new QValueAxis;
    klAxis_->setTitleText(tr("KL, nats/token"));
    chart->addAxis(stepAxis_, Qt::AlignBottom);
    chart->addAxis(lossAxis_, Qt::AlignLeft);
    chart->addAxis(klAxis_, Qt::AlignRight);
    lossSeries_->attachAxis(stepAxis_);
    lossSeries_->attachAxis(lossAxis_);
    klSeries_->attachAxis(stepAxis_);
    klSeries_->attachAxis(klAxis_);
    applyPalette(chart, palette());

    view_ = new QChartView(chart, this);
    view_->setRenderHint(QPainter::Antialiasing);
    view_->setToolTip(tr("Training loss: cross-entropy (or distillation loss) of the batches, per step. Held-out KL: "
                         "KL divergence of the quantized model from full precision on held-out text; the number "
                         "that matters, measured every few steps."));
    stack_ = noDataStack(view_, tr("No data: the curves appear when quantization-aware training runs."), this);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(stack_);
    clear();
}

void TrainingCurves::appendPoint(int64_t step, double loss) {
    if (!std::isfinite(loss)) return;
    pendingLoss_.emplace_back(double(step), loss);
    schedule();
}

void TrainingCurves::appendKl(int64_t step, double kl) {
    if (!std::isfinite(kl)) return;
    pendingKl_.emplace_back(double(step), kl);
    schedule();
}

void TrainingCurves::schedule() {
    if (!timer_->isActive()) timer_->start();
}

void TrainingCurves::clear() {
    timer_->stop();
    loss_.clear(), kl_.clear(), pendingLoss_.clear(), pendingKl_.clear();
    lossSeries_->clear();
    klSeries_->clear();
    stepMax_ = 1, lossMax_ = 0, klMax_ = 0;
    stepAxis_->setRange(0, 1);
    lossAxis_->setRange(0, 1);
    klAxis_->setRange(0, 1);
    stack_->setCurrentIndex(0);
}

void TrainingCurves::flush() {
    timer_->stop();
    if (pendingLoss_.empty() && pendingKl_.empty()) return;
    // One append per series per update: the series redraws once, not per point.
    QList<QPointF> batch;
    for (const QPointF& p : pendingLoss_) batch << p, stepMax_ = std::max(stepMax_, p.x()), lossMax_ = std::max(lossMax_, p.y());
    if (!batch.isEmpty()) lossSeries_->append(batch);
    batch.clear();
    for (const QPointF& p : pendingKl_) batch << p, stepMax_ = std::max(stepMax_, p.x()), klMax_ = std::max(klMax_, p.y());
    if (!batch.isEmpty()) klSeries_->append(batch);
    loss_.insert(loss_.end(), pendingLoss_.begin(), pendingLoss_.end());
    kl_.insert(kl_.end(), pendingKl_.begin(), pendingKl_.end());
    pendingLoss_.clear();
    pendingKl_.clear();
    stepAxis_->setRange(0, stepMax_);
    lossAxis_->setRange(0, lossMax_ > 0 ? lossMax_ * 1.05 : 1);
    klAxis_->setRange(0, klMax_ > 0 ? klMax_ * 1.05 : 1);
    for (QValueAxis* a : {stepAxis_, lossAxis_, klAxis_}) a->applyNiceNumbers();
    stepAxis_->setLabelFormat(QStringLiteral("%.0f"));
    ++updates_;
    stack_->setCurrentIndex(1);
}

void TrainingCurves::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange) applyPalette(view_->chart(), palette());
}

}  // namespace quench::gui
