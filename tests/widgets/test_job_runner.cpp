// The job adapter: work runs off the GUI thread, progress arrives coalesced (a job reporting a hundred
// thousand times does not flood the event loop), cancel stops the work through the sink's flag, errors carry
// core's message, and the queue runs jobs one at a time in order.
#include <QDeadlineTimer>
#include <QElapsedTimer>
#include <QSignalSpy>
#include <QThread>
#include <QTimer>
#include <QtTest>

#include <atomic>
#include <thread>

#include "common/error.h"
#include "job_queue.h"
#include "job_runner.h"
#include "common/progress.h"

using quench::gui::JobQueue;
using quench::gui::JobRunner;

class TestJobRunner : public QObject {
    Q_OBJECT

private slots:
    void runsOffTheGuiThreadAndFinishes() {
        std::atomic<bool> onGuiThread{true};
        QThread* gui = QThread::currentThread();
        JobRunner job(QStringLiteral("t"), [&](quench::ProgressSink& p) {
            onGuiThread = QThread::currentThread() == gui;
            p.report(0.5, "half");
        });
        QSignalSpy finished(&job, &JobRunner::finished);
        QSignalSpy ended(&job, &JobRunner::ended);
        job.start();
        QVERIFY(job.waitForEnd(5000));
        QVERIFY(!onGuiThread);
        QCOMPARE(finished.count(), 1);
        QCOMPARE(ended.count(), 1);
        QCOMPARE(job.state(), JobRunner::State::Finished);
        QCOMPARE(job.fraction(), 1.0);
        QVERIFY(job.log().contains(QStringLiteral("finished")));
    }

    void progressIsRateLimited() {
        // Reports in a tight loop for at least 300 ms: at most one forwarded per kProgressIntervalMs, plus
        // the first. The clock here is the rate limiter's input, not a speed target: the bound is taken
        // from how long the job really reported, so a slow or loaded machine only raises it, and the last
        // report comes at least 300 ms after the first (forwarded) one, so a second is always forwarded.
        std::atomic<qint64> reportedMs{-1};
        JobRunner job(QStringLiteral("flood"), [&](quench::ProgressSink& p) {
            p.report(0.0, "same stage");
            QElapsedTimer t;
            t.start();
            int i = 0;
            for (;;) {
                const bool last = t.elapsed() >= 300;
                p.report(std::min(1.0, ++i / 200000.0), "same stage");
                if (last) break;
            }
            reportedMs = t.elapsed() + 1;  // + 1: the first report came just before t started
        });
        QSignalSpy progressed(&job, &JobRunner::progressed);
        job.start();
        QVERIFY(job.waitForEnd(30000));  // liveness only: the job ends about 300 ms after it starts
        QCOMPARE(job.state(), JobRunner::State::Finished);
        QVERIFY(reportedMs >= 300);
        const QString counts = QStringLiteral("%1 forwarded over %2 ms").arg(progressed.count()).arg(reportedMs.load());
        QVERIFY2(progressed.count() >= 2, qPrintable(counts));
        QVERIFY2(progressed.count() <= reportedMs / JobRunner::kProgressIntervalMs + 2, qPrintable(counts));
    }

    void cancelStopsTheWorkThroughTheSink() {
        std::atomic<int> units{0};
        JobRunner job(QStringLiteral("long"), [&](quench::ProgressSink& p) {
            for (int i = 0; i < 100000; ++i) {
                p.check();
                ++units;
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        });
        QSignalSpy cancelled(&job, &JobRunner::cancelled);
        job.start();
        QTest::qWait(50);
        job.cancel();
        QVERIFY(job.waitForEnd(5000));
        QCOMPARE(cancelled.count(), 1);
        QCOMPARE(job.state(), JobRunner::State::Cancelled);
        QVERIFY(units < 100000);
    }

    void failureCarriesCoresMessage() {
        JobRunner job(QStringLiteral("bad"), [](quench::ProgressSink&) {
            throw quench::Error("config.json: field 'hidden_size': expected a number");
        });
        QSignalSpy failed(&job, &JobRunner::failed);
        job.start();
        QVERIFY(job.waitForEnd(5000));
        QCOMPARE(failed.count(), 1);
        QCOMPARE(failed.at(0).at(0).toString(), QStringLiteral("config.json: field 'hidden_size': expected a number"));
        QCOMPARE(job.errorMessage(), failed.at(0).at(0).toString());
    }

    void eventLoopRunsWhileAJobFloodsProgress() {
        // A busy worker reporting constantly does not hold up the GUI thread: after its first report it spins,
        // reporting, until a 10 ms GUI timer has fired five more times, so the job can only finish if the
        // event loop ran timers during the job. No wall-clock bound: how late the timer may be (the < 100 ms
        // target) is measured by tests/bench/bench_views (job_runner/event_loop_gap).
        constexpr int kTicks = 5;
        std::atomic<int> ticks{0};
        std::atomic<int> ticksAfterFirstReport{-1};
        JobRunner job(QStringLiteral("busy"), [&](quench::ProgressSink& p) {
            p.report(0.1, "spinning");
            const int first = ticks.load();
            // Liveness only: if the GUI thread never ran, give up after 60 s and let the checks below fail.
            const QDeadlineTimer giveUp(60000);
            volatile double x = 0;
            while (ticks.load() - first < kTicks && !giveUp.hasExpired()) {
                for (int i = 0; i < 1000; ++i) x = x + i;
                p.report(0.1 + 0.8 * (ticks.load() - first) / kTicks, "spinning");
            }
            ticksAfterFirstReport = ticks.load() - first;
        });
        QSignalSpy progressed(&job, &JobRunner::progressed);  // emitted only while the job is running
        int progressedAtTick = 0;
        QTimer tick;
        tick.setInterval(10);
        connect(&tick, &QTimer::timeout, this, [&] {
            if (job.state() != JobRunner::State::Running) return;
            progressedAtTick = progressed.count();
            ++ticks;
        });
        tick.start();
        job.start();
        QVERIFY(job.waitForEnd(90000));
        tick.stop();
        QCOMPARE(job.state(), JobRunner::State::Finished);
        QVERIFY2(ticksAfterFirstReport.load() >= kTicks, qPrintable(QString::number(ticksAfterFirstReport.load())));
        // The GUI saw the job's progress at a timer tick during the job, coalesced and in order.
        QVERIFY2(progressedAtTick >= 1, qPrintable(QString::number(progressedAtTick)));
        for (int i = 1; i < progressed.count(); ++i)
            QVERIFY(progressed.at(i).at(0).toDouble() >= progressed.at(i - 1).at(0).toDouble());
        QCOMPARE(progressed.last().at(1).toString(), QStringLiteral("spinning"));
    }

    void queueRunsJobsOneAtATimeInOrder() {
        JobQueue queue;
        std::atomic<int> running{0}, maxRunning{0};
        std::vector<int> order;
        std::mutex m;
        auto work = [&](int id) {
            return [&, id](quench::ProgressSink&) {
                maxRunning = std::max(maxRunning.load(), ++running);
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                {
                    std::lock_guard<std::mutex> lock(m);
                    order.push_back(id);
                }
                --running;
            };
        };
        queue.enqueue(QStringLiteral("a"), work(1));
        queue.enqueue(QStringLiteral("b"), work(2));
        JobRunner* c = queue.enqueue(QStringLiteral("c"), work(3));
        QCOMPARE(c->state(), JobRunner::State::Queued);
        QVERIFY(queue.waitForIdle(5000));
        QCOMPARE(maxRunning.load(), 1);
        QCOMPARE(order, (std::vector<int>{1, 2, 3}));
    }

    void cancellingAQueuedJobEndsItWithoutRunning() {
        JobQueue queue;
        std::atomic<bool> ran{false};
        queue.enqueue(QStringLiteral("first"), [](quench::ProgressSink&) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        });
        JobRunner* second = queue.enqueue(QStringLiteral("second"), [&](quench::ProgressSink&) { ran = true; });
        second->cancel();
        QCOMPARE(second->state(), JobRunner::State::Cancelled);
        QVERIFY(queue.waitForIdle(5000));
        QVERIFY(!ran);
    }
};

QTEST_MAIN(TestJobRunner)
#include "test_job_runner.moc"
