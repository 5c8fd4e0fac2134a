#pragma once
// Connects the Allocation tab to the session: Apply quantizes the model with the allocation shown (the same
// WorkbenchSession::applyAllocation that Run > Apply Allocation calls), the tab keeps which allocation the
// model now has, and each evaluation of that model puts its measured KL next to the predicted one. Which
// allocation the model has is read from the session's quantized layers, so an allocation applied from the
// menu counts too, and quantizing anything else retires the comparison.
#include <QObject>

namespace quench {
struct Allocation;
}

namespace quench::gui {

class AllocationView;
class WorkbenchSession;

class AllocationSessionLink : public QObject {
    Q_OBJECT
public:
    AllocationSessionLink(WorkbenchSession* session, AllocationView* view, QObject* parent = nullptr);

    // True when the session's quantized layers are exactly this allocation's: every quantized layer of it at
    // its spec, and no other layer quantized.
    static bool modelHas(const WorkbenchSession& session, const quench::Allocation& allocation);

private:
    void onQuantized();
    void onEvaluated();

    WorkbenchSession* session_;
    AllocationView* view_;
    int pendingApplies_ = 0;  // Apply jobs not yet ended: their allocation is on its way, not retired
};

}  // namespace quench::gui
