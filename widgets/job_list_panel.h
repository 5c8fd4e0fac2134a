#pragma once
// The Jobs panel: one row per job of the queue with its state, a progress bar, the ETA and a Cancel
// button, and below it the live log of the selected job (the running one unless the user picks another).
#include <QWidget>

#include <map>

class QPlainTextEdit;
class QTreeWidget;
class QTreeWidgetItem;

namespace quench::gui {

class JobQueue;
class JobRunner;

class JobListPanel : public QWidget {
    Q_OBJECT

public:
    enum Column { NameCol = 0, StateCol, ProgressCol, EtaCol, CancelCol, ColumnCount };

    explicit JobListPanel(JobQueue* queue, QWidget* parent = nullptr);

    QTreeWidget* list() const { return list_; }
    QPlainTextEdit* logView() const { return log_; }
    int rowCount() const;
    QString stateText(int row) const;
    int progressPercent(int row) const;
    void cancelRow(int row);  // what the row's Cancel button does

    static QString stateName(int state);  // JobRunner::State as shown

private:
    void addJob(JobRunner* job);
    void updateRow(JobRunner* job);
    void showLog(JobRunner* job);

    JobQueue* queue_;
    QTreeWidget* list_;
    QPlainTextEdit* log_;
    std::map<JobRunner*, QTreeWidgetItem*> rows_;
    JobRunner* shown_ = nullptr;
};

}  // namespace quench::gui
