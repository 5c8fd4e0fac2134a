#pragma once
// The summary at the top of the Results tab: the latest evaluation's numbers as core's KlReport gives them
// (bits per weight, KL mean with its standard error, the p99 tail, top-1 agreement, perplexity quantized and
// full precision), the protocol they were measured under, the change from the evaluation before (with a
// warning when that one used another protocol) and, when sensitivity was measured on the same layers, the best
// uniform setting at no more bits with its predicted KL. It also says when the latest result was not evaluated
// (no evaluation text) and when runs are not being saved (no project file).
#include <QWidget>

class QGridLayout;
class QLabel;

namespace quench::gui {

class WorkbenchSession;

class ResultsSummary : public QWidget {
    Q_OBJECT

public:
    enum Field { BitsField = 0, KlField, P99Field, Top1Field, PplField, PplRefField, FieldCount };
    enum Row { LatestRow = 0, DeltaRow, UniformRow, RowCount };

    explicit ResultsSummary(WorkbenchSession* session, QWidget* parent = nullptr);

    // The cell as displayed; its "value" property holds the number unrounded (KL cells also "stderr").
    QLabel* cell(Row row, Field field) const { return cells_[row][field]; }
    bool rowShown(Row row) const;
    QString titleText() const;
    QString uniformText() const;   // the uniform row's setting and the latest KL's difference; empty without one
    QString protocolText() const;  // "Protocol: 512 tokens of eval.txt at ctx 128 (504 scored)"
    QString noteText() const;      // not evaluated, not comparable, not saved: whichever apply
    void refresh();                // from the session (the window calls it when the project file changes)

private:
    void setCell(Row row, Field field, const QString& text, double value);

    WorkbenchSession* session_;
    QString skipped_;  // why the latest result has no KL; empty when it has
    QLabel* title_;
    QWidget* table_;
    QGridLayout* grid_;
    QLabel* rowLabels_[RowCount];
    QLabel* cells_[RowCount][FieldCount];
    QLabel* uniformSpec_;  // the uniform row's setting and the latest KL's difference from it, under the table
    QLabel* protocol_;
    QLabel* warning_;  // orange: the delta compares two protocols
    QLabel* note_;
};

}  // namespace quench::gui
