#include "allocation_session_link.h"

#include "alloc/allocation.h"
#include "analysis/model_eval.h"
#include "charts/allocation_view.h"
#include "job_runner.h"
#include "workbench_session.h"

namespace quench::gui {

AllocationSessionLink::AllocationSessionLink(WorkbenchSession* session, AllocationView* view, QObject* parent)
    : QObject(parent), session_(session), view_(view) {
    const QString noModel = tr("Open a model first: applying an allocation quantizes its layers");
    view_->setApplyAvailable(session_->hasModel(), noModel);
    // Another model: the measurements, the allocation and what was applied belonged to the old one.
    connect(session_, &WorkbenchSession::modelLoaded, view_, [this, noModel] {
        view_->clearApplied();
        view_->setSpec({});
        view_->setApplyAvailable(session_->hasModel(), noModel);
    });
    connect(view_, &AllocationView::applyRequested, this, [this](const quench::Allocation& a) {
        view_->setApplied(a);
        JobRunner* job = session_->applyAllocation(a);
        ++pendingApplies_;
        connect(job, &JobRunner::ended, this, [this] {
            // A failed or cancelled apply left the model without it: nothing to compare any more.
            if (--pendingApplies_ == 0 && view_->applied() && !modelHas(*session_, *view_->applied())) view_->clearApplied();
        });
    });
    connect(session_, &WorkbenchSession::quantized, this, &AllocationSessionLink::onQuantized);
    connect(session_, &WorkbenchSession::evaluated, this, &AllocationSessionLink::onEvaluated);
}

bool AllocationSessionLink::modelHas(const WorkbenchSession& session, const quench::Allocation& allocation) {
    const auto outcomes = session.layerOutcomes();
    std::size_t quantized = 0;
    for (const auto& c : allocation.layers) {
        if (c.excluded) continue;
        const auto index = session.layers().index_of(c.name);
        if (!index) return false;
        const auto it = outcomes.find(*index);
        if (it == outcomes.end() || it->second.spec != QString::fromStdString(c.spec)) return false;
        ++quantized;
    }
    return outcomes.size() == quantized;
}

void AllocationSessionLink::onQuantized() {
    view_->clearMeasuredKl();  // the model changed: an earlier measurement no longer describes it
    const quench::Allocation* applied = view_->applied();
    if (applied && modelHas(*session_, *applied)) return;
    if (view_->hasAllocation() && modelHas(*session_, view_->allocation())) view_->setApplied(view_->allocation());
    else if (pendingApplies_ == 0) view_->clearApplied();
}

void AllocationSessionLink::onEvaluated() {
    const quench::Allocation* applied = view_->applied();
    if (applied && session_->hasKl() && modelHas(*session_, *applied)) view_->setMeasuredKl(session_->klReport().kl_mean);
}

}  // namespace quench::gui
