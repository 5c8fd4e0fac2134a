#pragma once
// The Results panel: project files (.h5 run stores) opened side by side, their runs listed, and two runs
// compared layer by layer (bits, weight error, SQNR and their deltas, plus the runs' KL and how each KL was
// measured, with a warning when the two protocols differ). The window puts its results summary on top.
#include <QStringList>
#include <QWidget>

class QComboBox;
class QLabel;
class QTreeWidget;

namespace quench::gui {

class ErrorReporter;

class ResultsPanel : public QWidget {
    Q_OBJECT

public:
    enum RunColumn { FileCol = 0, IdCol, KindCol, StatusCol, BpwCol, StartedCol, RunColumnCount };
    enum CompareColumn { LayerCol = 0, SpecACol, SpecBCol, BitsACol, BitsBCol, DeltaBitsCol, ErrACol, ErrBCol,
                         DeltaErrCol, DeltaSqnrCol, CompareColumnCount };

    ResultsPanel(ErrorReporter* errors, QWidget* parent = nullptr);

    // Opens (or re-reads) a project file; false after reporting the error (bad or missing file).
    bool openFile(const QString& path);
    void reload();
    QStringList files() const { return files_; }
    QTreeWidget* runList() const { return runs_; }
    QTreeWidget* comparison() const { return compare_; }
    QComboBox* runBoxA() const { return runA_; }  // the compared runs ("file|run-0001" as item data)
    QComboBox* runBoxB() const { return runB_; }
    int runCount() const;
    // Compares two runs ("file|run-0001" keys as in the A/B boxes); false after reporting the error.
    bool compare(const QString& fileA, const QString& runA, const QString& fileB, const QString& runB);
    QString summaryText() const;
    // "KL not comparable: ..." while the compared runs' KL protocols differ; empty (and hidden) otherwise.
    QString protocolWarning() const;
    // Shows w above the project files (the window's summary of the latest evaluation).
    void setHeader(QWidget* w);

signals:
    void fileOpened(const QString& path);

private:
    void browse();
    void rebuildBoxes();
    void compareSelected();

    ErrorReporter* errors_;
    QStringList files_;
    QTreeWidget* runs_;
    QComboBox* runA_;
    QComboBox* runB_;
    QTreeWidget* compare_;
    QLabel* summary_;
    QLabel* protocolWarning_;
};

}  // namespace quench::gui
