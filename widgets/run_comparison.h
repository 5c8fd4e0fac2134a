#pragma once
// Runs of a project file as the Results panel shows them, and the per-layer comparison of two runs.
// Torch-free: the .cpp reads core's records (jobs/run_records.h) and copies out plain numbers.
#include <QString>
#include <QStringList>

#include <vector>

#include "eval_summary.h"

namespace quench::gui {

struct RunLayerSummary {
    QString layer, spec;
    double bitsPerWeight = 0;
    double relError = 0;
    double sqnrDb = 0;
    double outputRelError = -1;  // -1: not measured
};

struct RunView {
    QString file, id, kind, status, started, commandLine, message;
    double totalBpw = -1;  // -1 when the run has no such attribute
    double klMean = -1;    // -1 when the run has no KL report
    double pplRatio = -1;
    EvalProtocolView protocol;  // how klMean was measured (the KL report's protocol, the "eval" text recorded)
    std::vector<RunLayerSummary> layers;  // empty unless the run has a "layers" table
};

// Every run of a project file with its summary (no layer tables). Throws quench::Error naming the file.
std::vector<RunView> listRuns(const QString& file);
// One run with its layer table and KL summary. Throws quench::Error.
RunView loadRun(const QString& file, const QString& id);

// One layer of a comparison: present in a, b or both; deltas are b - a.
struct LayerDelta {
    QString layer;
    bool inA = false, inB = false;
    RunLayerSummary a, b;
    double deltaBits() const { return b.bitsPerWeight - a.bitsPerWeight; }
    double deltaRelError() const { return b.relError - a.relError; }
    double deltaSqnrDb() const { return b.sqnrDb - a.sqnrDb; }
};
// Layers in a's order, then those only in b.
std::vector<LayerDelta> compareRuns(const RunView& a, const RunView& b);
// Empty unless both runs have KL and measured it differently; else "KL not comparable: A used ..., B ...".
QString klComparabilityWarning(const RunView& a, const RunView& b);

}  // namespace quench::gui
