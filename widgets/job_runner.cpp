#include "job_runner.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDeadlineTimer>
#include <QPointer>
#include <QThread>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include "common/error.h"
#include "common/progress.h"

namespace quench::gui {

// The sink the worker thread reports into. Reports are coalesced: only the latest fraction and stage are
// kept, and a queued call carries them to the GUI thread at most every kProgressIntervalMs, so a job that
// reports per row cannot flood the event loop.
class JobRunner::Sink : public quench::ProgressSink {
public:
    explicit Sink(JobRunner* runner) : runner_(runner) {}
    void report(double fraction, const std::string& stage) override {
        using clock = std::chrono::steady_clock;
        const auto now = clock::now();
        std::lock_guard<std::mutex> lock(mutex_);
        const bool stage_changed = stage != last_stage_;
        if (!stage_changed && now - last_post_ < std::chrono::milliseconds(kProgressIntervalMs)) return;
        if (stage_changed && now - last_post_ < std::chrono::milliseconds(kProgressIntervalMs / 5)) return;
        last_post_ = now;
        last_stage_ = stage;
        const QString text = QString::fromStdString(stage);
        QPointer<JobRunner> target = runner_;
        QMetaObject::invokeMethod(
            runner_, [target, fraction, text] { if (target) target->onProgress(fraction, text); },
            Qt::QueuedConnection);
    }
    bool cancelled() const override { return cancelled_.load(); }
    void cancel() { cancelled_.store(true); }

private:
    JobRunner* runner_;
    std::atomic<bool> cancelled_{false};
    std::mutex mutex_;
    std::chrono::steady_clock::time_point last_post_{};
    std::string last_stage_;
};

JobRunner::JobRunner(const QString& name, Work work, QObject* parent)
    : QObject(parent), name_(name), work_(std::move(work)), sink_(std::make_shared<Sink>(this)) {}

JobRunner::~JobRunner() {
    if (thread_) {
        sink_->cancel();
        thread_->wait();
        delete thread_;
    }
}

double JobRunner::elapsedSeconds() const { return clock_.isValid() ? clock_.elapsed() / 1000.0 : 0.0; }

double JobRunner::etaSeconds() const {
    if (state_ != State::Running || fraction_ < 0.02) return -1;
    return elapsedSeconds() * (1.0 - fraction_) / fraction_;
}

void JobRunner::start() {
    if (state_ != State::Queued) return;
    if (sink_->cancelled()) {
        onEnd(State::Cancelled, {});
        return;
    }
    state_ = State::Running;
    clock_.start();
    appendLog(tr("started"));
    auto sink = sink_;
    auto work = work_;
    QPointer<JobRunner> self = this;
    // The thread owns copies of the work and the sink, so it never reads the runner's members.
    thread_ = QThread::create([sink, work, self] {
        State end = State::Finished;
        QString message;
        try {
            work(*sink);
        } catch (const quench::Cancelled&) {
            end = State::Cancelled;
        } catch (const std::exception& e) {
            end = State::Failed;
            message = QString::fromUtf8(e.what());
        } catch (...) {
            end = State::Failed;
            message = QStringLiteral("unknown error");
        }
        QMetaObject::invokeMethod(
            QCoreApplication::instance(), [self, end, message] { if (self) self->onEnd(end, message); },
            Qt::QueuedConnection);
    });
    thread_->setObjectName(QStringLiteral("job: ") + name_);
    thread_->start();
}

void JobRunner::cancel() {
    sink_->cancel();
    if (state_ == State::Queued) onEnd(State::Cancelled, {});
}

bool JobRunner::waitForEnd(int timeout_ms) {
    QDeadlineTimer deadline(timeout_ms);
    while (isActive() && !deadline.hasExpired())
        QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return !isActive();
}

void JobRunner::onProgress(double fraction, const QString& stage) {
    if (state_ != State::Running) return;
    fraction_ = std::clamp(fraction, 0.0, 1.0);
    if (stage != stage_ && !stage.isEmpty()) appendLog(stage);
    stage_ = stage;
    emit progressed(fraction_, stage_);
}

void JobRunner::onEnd(State state, const QString& message) {
    if (!isActive()) return;
    if (thread_) thread_->wait();  // the thread has returned from the work; join it
    state_ = state;
    error_ = message;
    switch (state) {
    case State::Finished:
        fraction_ = 1.0;
        appendLog(tr("finished in %1 s").arg(elapsedSeconds(), 0, 'f', 2));
        emit finished();
        break;
    case State::Failed:
        appendLog(tr("failed: %1").arg(message));
        emit failed(message);
        break;
    default:
        appendLog(tr("cancelled"));
        emit cancelled();
        break;
    }
    emit ended();
}

void JobRunner::appendLog(const QString& line) {
    const QString stamped = QDateTime::currentDateTime().toString(QStringLiteral("HH:mm:ss.zzz ")) + line;
    log_ += stamped + QLatin1Char('\n');
    emit logged(stamped);
}

}  // namespace quench::gui
