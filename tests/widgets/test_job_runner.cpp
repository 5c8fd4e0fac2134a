// The job adapter: work runs off the GUI thread, progress arrives coalesced (a job reporting a hundred
// thousand times does not flood the event loop), cancel stops the work through the sink's flag, errors carry
// core's message, and the queue runs jobs one at a time in order.
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
#include "jobs/progress.h"

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
        // 200k reports over about 300 ms: at most one forwarded per 50 ms plus stage changes.
        JobRunner job(QStringLiteral("flood"), [](quench::ProgressSink& p) {
            QElapsedTimer t;
            t.start();
            int i = 0;
            while (t.elapsed() < 300) p.report(std::min(1.0, ++i / 200000.0), "same stage");
        });
        QSignalSpy progressed(&job, &JobRunner::progressed);
        job.start();
        QVERIFY(job.waitForEnd(5000));
        QVERIFY2(progressed.count() >= 2, qPrintable(QString::number(progressed.count())));
        QVERIFY2(progressed.count() <= 300 / JobRunner::kProgressIntervalMs + 3, qPrintable(QString::number(progressed.count())));
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

    void eventLoopStaysResponsiveWhileAJobRuns() {
        // A busy worker reporting constantly; a 10 ms GUI timer must never be late by 100 ms.
        JobRunner job(QStringLiteral("busy"), [](quench::ProgressSink& p) {
            QElapsedTimer t;
            t.start();
            volatile double x = 0;
            while (t.elapsed() < 600) {
                for (int i = 0; i < 1000; ++i) x = x + i;
                p.report(t.elapsed() / 600.0, "spinning");
            }
        });
        QElapsedTimer gap;
        qint64 worst = 0;
        QTimer tick;
        tick.setInterval(10);
        connect(&tick, &QTimer::timeout, this, [&] {
            worst = std::max(worst, gap.restart());
        });
        gap.start();
        tick.start();
        job.start();
        QVERIFY(job.waitForEnd(5000));
        tick.stop();
        QVERIFY2(worst < 100, qPrintable(QStringLiteral("worst event-loop gap %1 ms").arg(worst)));
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
