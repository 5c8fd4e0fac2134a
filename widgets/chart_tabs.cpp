#include "chart_tabs.h"

#include <QScrollArea>
#include <QTabBar>

#include "alloc/allocation.h"
#include "analysis/model_eval.h"
#include "jobs/sensitivity.h"
#include "common/error.h"
#include "jobs/model_quantizer.h"
#include "workbench_session.h"
#include "allocation_session_link.h"

#include "charts/distortion_chart.h"
#include "charts/allocation_view.h"
#include "charts/sensitivity_heatmap.h"
#include "charts/rate_distortion_chart.h"
#include "charts/weight_histogram.h"
#include "charts/training_curves.h"
#include "charts/token_kl_view.h"
#include "model/tokenizer.h"
#include "weights_page.h"

namespace quench::gui {

ChartTabs::ChartTabs(WorkbenchSession* session, QWidget* parent) : QTabWidget(parent), session_(session) {
    setDocumentMode(true);
    // Every tab reachable at a glance: at 1280 x 800 with the docks open the bar is about 600 px wide, and
    // scroll arrows would hide the last tabs (Results). Short titles fit; on a narrower window the titles
    // elide rather than scroll, and each tab's tooltip says what it holds.
    tabBar()->setUsesScrollButtons(false);
    tabBar()->setElideMode(Qt::ElideRight);
    tabBar()->setExpanding(false);
    auto* distortion = new DistortionChart(this);
    distortion->setObjectName(QStringLiteral("distortionChart"));
    distortion_ = distortion;
    addChartTab(distortion_, tr("Distortion"));
    setTabToolTip(count() - 1, tr("Per-layer error of the latest quantization, one bar per layer"));

    sensitivity_ = new SensitivityHeatmap(this);
    addChartTab(sensitivity_, tr("Sensitivity"));
    setTabToolTip(count() - 1, tr("KL per layer and candidate setting, from the latest sensitivity measurement"));

    rateDistortion_ = new RateDistortionChart(this);
    addChartTab(rateDistortion_, tr("R-D"));
    setTabToolTip(count() - 1, tr("Rate-distortion: KL against bits per weight for each layer's candidates"));

    auto* alloc = new AllocationView(this);
    alloc->setObjectName(QStringLiteral("allocationView"));
    allocation_ = alloc;
    connect(alloc, &AllocationView::allocationChanged, this, [this](const quench::Allocation& a) {
        allocation_result_ = std::make_shared<quench::Allocation>(a);
        emit allocationChanged(a.bits_per_weight, a.total_cost, a.bytes);
    });
    // No allocation any more (infeasible budget, contradicting constraints): Run > Apply Allocation must not
    // apply the last one the tab showed, and the status bar must not keep announcing it.
    connect(alloc, &AllocationView::allocationUnavailable, this, [this](const QString& reason) {
        allocation_result_.reset();
        emit allocationUnavailable(reason);
    });
    new AllocationSessionLink(session_, alloc, this);  // the tab's Apply, predicted vs measured KL
    addChartTab(allocation_, tr("Allocation"));
    setTabToolTip(count() - 1, tr("Bits per layer under a budget, re-solved as the budget slider moves"));

    weightsPage_ = new WeightsPage(session_, this);
    weights_ = weightsPage_->histogram();
    addChartTab(weightsPage_, tr("Weights"));
    setTabToolTip(count() - 1, tr("Distribution of the selected layer's original weights, with the quantization "
                                  "levels of one of its groups"));
    training_ = new TrainingCurves(this);
    addChartTab(training_, tr("QAT"));
    setTabToolTip(count() - 1, tr("Training: QAT loss and held-out KL per step of the running or latest training"));
    tokenKl_ = new TokenKlView(this);
    addChartTab(tokenKl_, tr("Tokens"));
    setTabToolTip(count() - 1, tr("Token KL: the evaluation text coloured by each token's KL divergence"));

    connect(session_, &WorkbenchSession::quantized, this, &ChartTabs::refreshDistortion);
    connect(session_, &WorkbenchSession::modelLoaded, this, &ChartTabs::refreshDistortion);
    connect(session_, &WorkbenchSession::quantized, weightsPage_, &WeightsPage::refresh);
    connect(session_, &WorkbenchSession::modelLoaded, weightsPage_, &WeightsPage::clear);
    connect(session_, &WorkbenchSession::sensitivityMeasured, this, &ChartTabs::refreshSensitivity);
    connect(session_, &WorkbenchSession::constraintsChanged, this, &ChartTabs::refreshConstraints);
    // A resumed run goes on from its checkpoint: the curve so far stays, and the finished run's whole curve
    // (the checkpoint's steps included) replaces what was streamed.
    connect(session_, &WorkbenchSession::qatStarted, this, [this](bool resuming) {
        if (!resuming) training_->clear();
    });
    connect(session_, &WorkbenchSession::qatFinished, this, &ChartTabs::refreshTraining);
    connect(session_, &WorkbenchSession::qatStep, this, [this](qint64 step, double loss, double kl) {
        auto* curves = training_;
        curves->appendPoint(step, loss);
        if (kl >= 0) curves->appendKl(step, kl);
    });
    // The per-token view lays out thousands of coloured runs of text: build it only when it is looked at,
    // so finishing a quantize job never holds up the event loop for a view nobody sees.
    connect(session_, &WorkbenchSession::evaluated, this, [this] {
        klDirty_ = true;
        if (isShown(tokenKl_)) refreshKl();
    });
    connect(this, &QTabWidget::currentChanged, this, [this] {
        if (klDirty_ && isShown(tokenKl_)) refreshKl();
    });
}

ChartTabs::~ChartTabs() = default;

void ChartTabs::addChartTab(QWidget* chart, const QString& title) {
    // Charts grow their minimum size with their contents (axis labels, legends); inside a scroll area they
    // cannot push the window beyond the screen, and at normal sizes they fill the tab as before.
    auto* page = new QScrollArea(this);
    page->setWidget(chart);
    page->setWidgetResizable(true);
    page->setFrameShape(QFrame::NoFrame);
    addTab(page, title);
}

QWidget* ChartTabs::pageOf(QWidget* chart) const {
    for (int i = 0; i < count(); ++i) {
        QWidget* page = widget(i);
        if (page == chart) return page;
        if (auto* scroll = qobject_cast<QScrollArea*>(page);
            scroll && (scroll->widget() == chart || scroll->widget()->isAncestorOf(chart)))
            return page;
    }
    return nullptr;
}

void ChartTabs::showChart(QWidget* chart) {
    if (QWidget* page = pageOf(chart)) setCurrentWidget(page);
}

bool ChartTabs::isShown(QWidget* chart) const { return chart && currentWidget() == pageOf(chart); }

void ChartTabs::refreshDistortion() {
    distortion_->setResults(session_->layerResults());
}

void ChartTabs::refreshSensitivity() {
    if (session_->measurements().empty()) return;
    sensitivity_->setMeasurements(session_->measurements(), quench::CostSource::Auto);
    rateDistortion_->setMeasurements(session_->measurements());
    if (session_->measurements().empty()) return;
    auto* view = allocation_;
    try {
        view->setSpec(session_->allocationSpec());
    } catch (const quench::Error&) {
        // No usable points: the view shows core's reason.
        view->setMeasurements(session_->measurements(), quench::CostSource::Auto);
    }
}

void ChartTabs::refreshConstraints() {
    if (session_->measurements().empty()) return;
    try {
        allocation_->setConstraints(session_->allocationSpec().constraints);
    } catch (const quench::Error&) {
    }
}

void ChartTabs::refreshKl() {
    klDirty_ = false;
    const auto* tok = session_->tokenizer();
    if (!session_->hasKl() || !tok) return;
    // The first tokens of the evaluated text; a few thousand are plenty to read and keep the view fast.
    std::vector<int32_t> ids = session_->evaluatedTokens();
    if (ids.size() > kMaxKlTokens) ids.resize(kMaxKlTokens);
    auto kl = TokenKlView::alignKl(session_->klReport(), ids.size());
    tokenKl_->setTokens(TokenKlView::tokenPieces(*tok, ids), ids, std::move(kl));
}

void ChartTabs::showLayerWeights(std::size_t layer) { weightsPage_->showLayer(layer); }

void ChartTabs::refreshTraining() {
    const QatCurve& c = session_->qatCurve();
    training_->clear();
    for (std::size_t i = 0; i < c.steps.size() && i < c.losses.size(); ++i) training_->appendPoint(c.steps[i], c.losses[i]);
    for (std::size_t i = 0; i < c.klSteps.size() && i < c.klValues.size(); ++i) training_->appendKl(c.klSteps[i], c.klValues[i]);
    training_->flush();
}

}  // namespace quench::gui
