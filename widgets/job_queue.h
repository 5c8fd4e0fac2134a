#pragma once
// Runs jobs one after another. Engine jobs share one loaded model that some of them modify (quantize
// replaces weights, sensitivity restores them), so they must never overlap; queuing them also lets the user
// line up "load, quantize, evaluate" without waiting. Keeps every job (with its log) for the job list.
#include <QObject>
#include <QString>

#include <vector>

#include "job_runner.h"

namespace quench::gui {

class JobQueue : public QObject {
    Q_OBJECT

public:
    explicit JobQueue(QObject* parent = nullptr);

    // Takes ownership; the job starts when every earlier job has ended.
    JobRunner* enqueue(const QString& name, JobRunner::Work work);
    const std::vector<JobRunner*>& jobs() const { return jobs_; }
    JobRunner* current() const;  // the running job, or nullptr
    bool busy() const;            // a job is queued or running
    void cancelAll();
    // Processes events until every job has ended or timeout_ms passed. True when idle.
    bool waitForIdle(int timeout_ms);

signals:
    void jobAdded(quench::gui::JobRunner* job);
    void jobEnded(quench::gui::JobRunner* job);
    void idle();

private:
    void startNext();

    std::vector<JobRunner*> jobs_;
};

}  // namespace quench::gui
