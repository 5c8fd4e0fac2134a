#include "job_queue.h"

#include <QCoreApplication>
#include <QDeadlineTimer>

namespace quench::gui {

JobQueue::JobQueue(QObject* parent) : QObject(parent) {}

JobRunner* JobQueue::enqueue(const QString& name, JobRunner::Work work) {
    auto* job = new JobRunner(name, std::move(work), this);
    jobs_.push_back(job);
    connect(job, &JobRunner::ended, this, [this, job] {
        emit jobEnded(job);
        startNext();
        if (!busy()) emit idle();
    });
    emit jobAdded(job);
    startNext();
    return job;
}

JobRunner* JobQueue::current() const {
    for (auto* j : jobs_)
        if (j->state() == JobRunner::State::Running) return j;
    return nullptr;
}

bool JobQueue::busy() const {
    for (auto* j : jobs_)
        if (j->isActive()) return true;
    return false;
}

void JobQueue::cancelAll() {
    // Queued ones first, so ending the running one does not start the next.
    for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it)
        if ((*it)->isActive()) (*it)->cancel();
}

bool JobQueue::waitForIdle(int timeout_ms) {
    QDeadlineTimer deadline(timeout_ms);
    while (busy() && !deadline.hasExpired()) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return !busy();
}

void JobQueue::startNext() {
    if (current()) return;
    for (auto* j : jobs_)
        if (j->state() == JobRunner::State::Queued) {
            j->start();
            return;
        }
}

}  // namespace quench::gui
