#pragma once
// The one Qt adapter for long engine work (OBS's RemuxWorker, done with an atomic flag): runs a
// std::function<void(quench::ProgressSink&)> on its own thread, forwards the sink's progress to the GUI
// thread through queued calls at most every kProgressIntervalMs, cancels through the sink's atomic flag
// (core jobs call check() between units of work), and reports exactly one of finished / failed(message) /
// cancelled, then ended. The work must not touch widgets; results go back through the finished signal.
#include <QElapsedTimer>
#include <QObject>
#include <QString>

#include <functional>
#include <memory>

class QThread;

namespace quench {
class ProgressSink;
}

namespace quench::gui {

class JobRunner : public QObject {
    Q_OBJECT

public:
    using Work = std::function<void(quench::ProgressSink&)>;
    enum class State { Queued, Running, Finished, Failed, Cancelled };
    static constexpr int kProgressIntervalMs = 50;

    JobRunner(const QString& name, Work work, QObject* parent = nullptr);
    ~JobRunner() override;  // cancels a running job and waits for its thread

    const QString& name() const { return name_; }
    State state() const { return state_; }
    bool isActive() const { return state_ == State::Queued || state_ == State::Running; }
    double fraction() const { return fraction_; }
    const QString& stage() const { return stage_; }
    const QString& errorMessage() const { return error_; }
    const QString& log() const { return log_; }
    double elapsedSeconds() const;
    // Seconds left, extrapolated from the elapsed time and the fraction done; -1 while unknown.
    double etaSeconds() const;

    void start();
    void cancel();  // thread-safe flag; a queued job ends cancelled at once
    // Processes events until the job has ended or timeout_ms passed (tests, shutdown). True when ended.
    bool waitForEnd(int timeout_ms);

signals:
    void progressed(double fraction, const QString& stage);
    void logged(const QString& line);
    void finished();
    void failed(const QString& message);
    void cancelled();
    void ended();  // after any of the three above

private:
    class Sink;
    void onProgress(double fraction, const QString& stage);
    void onEnd(State state, const QString& message);
    void appendLog(const QString& line);

    QString name_;
    Work work_;
    State state_ = State::Queued;
    double fraction_ = 0;
    QString stage_, error_, log_;
    QElapsedTimer clock_;
    std::shared_ptr<Sink> sink_;
    QThread* thread_ = nullptr;
};

}  // namespace quench::gui
