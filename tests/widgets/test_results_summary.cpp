// The workbench loop a user sees, on the real tiny model: after a quantize with evaluation text the Results
// summary and the status bar show core's KlReport numbers (compared with the report the session stored),
// with the protocol and the change from the evaluation before; Evaluate KL puts its KL in the status bar; a
// quantize without evaluation text says why there is no KL; with sensitivity measured on the same layers the
// summary predicts the best uniform setting at no more bits; Compare warns when two runs' KL protocols
// differ and not when they match; the window's shortcuts work while a line edit has focus (Ctrl+E in the
// layer filter); Ctrl+Q with a job running asks before cancelling it; without a project file a hint says
// runs are not saved.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>

#include <chrono>
#include <cmath>
#include <thread>

#include "analysis/model_eval.h"
#include "jobs/sensitivity.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "export_dialog.h"
#include "gui_test_support.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "job_queue.h"
#include "job_runner.h"
#include "common/progress.h"
#include "main_window.h"
#include "method_panel.h"
#include "model_panel.h"
#include "quant/codec.h"
#include "results_panel.h"
#include "results_summary.h"
#include "run_comparison.h"
#include "workbench_session.h"

using namespace quench::gui;

namespace {

constexpr qint64 kEvalTokens = 512;  // small: every evaluation takes well under a second
constexpr qint64 kOtherEvalTokens = 300;
constexpr qint64 kContext = 128;

// True when `text` (a number as displayed, possibly with a sign or a unit after it) is v rounded to the
// decimals the text shows.
bool showsRounded(const QString& text, double v) {
    static const QRegularExpression number(QStringLiteral("^[+-]?[0-9]+(\\.([0-9]+))?"));
    const auto m = number.match(text.trimmed());
    if (!m.hasMatch()) return false;
    const double shown = m.captured(0).toDouble();
    const int decimals = int(m.captured(2).size());
    return std::abs(shown - v) <= 0.5 * std::pow(10.0, -decimals) * (1 + 1e-9);
}

double value(const QLabel* cell) { return cell->property("value").toDouble(); }

// What QLineEdit does with the X11 keyboard scheme (a real X session): it claims Ctrl+E (MoveToEndOfLine) by
// accepting its ShortcutOverride, so the window's Ctrl+E never fires. The offscreen platform uses the Windows
// scheme, where Ctrl+E is no editing key; installed on the line edit, this plays the X11 one.
class X11LineEditKeys : public QObject {
public:
    using QObject::QObject;
    bool eventFilter(QObject*, QEvent* event) override {
        if (event->type() != QEvent::ShortcutOverride) return false;
        const auto* key = static_cast<QKeyEvent*>(event);
        if (key->keyCombination() != QKeyCombination(Qt::ControlModifier, Qt::Key_E)) return false;
        event->accept();
        return true;
    }
};

}  // namespace

class TestResultsSummary : public QObject {
    Q_OBJECT

    MainWindow* w_ = nullptr;
    QTemporaryDir dir_;
    QStringList errors_;
    std::vector<std::size_t> layers_;
    double firstKl_ = 0, firstBpw_ = 0;

    WorkbenchSession* session() const { return w_->session(); }
    ResultsSummary* summary() const { return w_->resultsSummary(); }

    // Runs a window request to its end; false (with the errors in the log) unless it finished.
    bool finish(JobRunner* job) {
        if (!job || !job->waitForEnd(60000)) return false;
        if (job->state() != JobRunner::State::Finished) qWarning() << job->name() << job->errorMessage() << errors_;
        return job->state() == JobRunner::State::Finished;
    }

    JobRunner* quantize(const QString& spec) {
        w_->methodPanel()->setSpecText(spec);
        return w_->quantizeSelection();
    }

private slots:
    void initTestCase() {
        test::isolateSettings();
        QVERIFY(dir_.isValid());
        w_ = new MainWindow;
        w_->errors()->setHandler([this](const QString& t, const QString& m) { errors_ << t + QStringLiteral(": ") + m; });
        w_->show();
        QVERIFY(QTest::qWaitForWindowExposed(w_));
        QVERIFY(finish(w_->openModel(test::modelDir())));
        w_->dataPanel()->setCalibPath(test::calibText());
        w_->dataPanel()->setCalibTokens(1024);
        w_->dataPanel()->setEvalPath(test::evalText());
        w_->dataPanel()->setEvalTokens(kEvalTokens);
        w_->dataPanel()->setContext(kContext);
        QVERIFY(w_->modelPanel()->selectByFilter(QStringLiteral("model.layers.0.self_attn.q_proj,model.layers.1.mlp.down_proj"), false));
        layers_ = w_->modelPanel()->selectedLayers();
        QCOMPARE(layers_.size(), std::size_t(2));
        // Before any evaluation the summary says how to get one.
        QVERIFY(summary()->titleText().contains(QStringLiteral("No evaluation yet")));
    }

    void cleanupTestCase() {
        delete w_;  // cancels and waits for any job still running
        w_ = nullptr;
    }

    // The numbers after a quantize are core's report, displayed rounded; the status bar has the short line.
    void quantizeShowsCoreNumbers() {
        JobRunner* job = quantize(QStringLiteral("rtn:b=4,g=32"));
        QVERIFY(job);
        // No project file: said once, as the job starts.
        QVERIFY2(w_->statusBar()->currentMessage().contains(QStringLiteral("Project File")),
                 qPrintable(w_->statusBar()->currentMessage()));
        QVERIFY(finish(job));
        QVERIFY(session()->hasKl());
        const quench::KlReport& kl = session()->klReport();
        QVERIFY(kl.kl_mean > 0 && kl.kl_stderr > 0 && kl.kl_p99 >= kl.kl_median);
        QCOMPARE(kl.protocol.text_tokens, int64_t(kEvalTokens));
        QCOMPARE(kl.protocol.ctx, int64_t(kContext));

        const QLabel* klCell = summary()->cell(ResultsSummary::LatestRow, ResultsSummary::KlField);
        // Exactly core's numbers behind each cell...
        QCOMPARE(value(klCell), kl.kl_mean);
        QCOMPARE(klCell->property("stderr").toDouble(), kl.kl_stderr);
        QCOMPARE(value(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::P99Field)), kl.kl_p99);
        QCOMPARE(value(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::Top1Field)), kl.top1_agreement);
        QCOMPARE(value(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::PplField)), kl.ppl_test);
        QCOMPARE(value(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::PplRefField)), kl.ppl_ref);
        QCOMPARE(value(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::BitsField)), session()->totalBitsPerWeight());
        // ... and the text shows them rounded, the standard error next to the mean.
        const QStringList klParts = klCell->text().split(QStringLiteral(" ± "));
        QCOMPARE(klParts.size(), 2);
        QVERIFY2(showsRounded(klParts[0], kl.kl_mean), qPrintable(klCell->text()));
        QVERIFY2(showsRounded(klParts[1], kl.kl_stderr), qPrintable(klCell->text()));
        QVERIFY(showsRounded(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::P99Field)->text(), kl.kl_p99));
        QVERIFY(showsRounded(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::Top1Field)->text(), 100 * kl.top1_agreement));
        QVERIFY(showsRounded(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::PplField)->text(), kl.ppl_test));
        QVERIFY(showsRounded(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::PplRefField)->text(), kl.ppl_ref));
        QVERIFY(summary()->titleText().contains(QStringLiteral("Quantize")));
        // The protocol the numbers hold under.
        QVERIFY2(summary()->protocolText().contains(QStringLiteral("%1 tokens of tinystories_val.eval.txt at ctx %2")
                                                        .arg(kl.protocol.text_tokens)
                                                        .arg(kl.protocol.ctx)),
                 qPrintable(summary()->protocolText()));
        QVERIFY(summary()->protocolText().contains(QStringLiteral("%1 scored").arg(kl.protocol.scored_tokens)));
        QVERIFY(!summary()->rowShown(ResultsSummary::DeltaRow));  // nothing before it
        QVERIFY(summary()->noteText().contains(QStringLiteral("not saved")));

        // The status bar: "KL m ± s nats, top-1 t%, PPL q (fp r) at b b/w".
        const QString line = w_->statusBar()->currentMessage();
        QVERIFY2(line.startsWith(QStringLiteral("KL ")), qPrintable(line));
        QVERIFY2(showsRounded(line.mid(3), kl.kl_mean), qPrintable(line));
        QVERIFY(line.contains(QStringLiteral("top-1 %1%").arg(100 * kl.top1_agreement, 0, 'f', 1)));
        QVERIFY(line.contains(QStringLiteral(" at %1 b/w").arg(session()->totalBitsPerWeight(), 0, 'f', 3)));
        const int ppl = line.indexOf(QStringLiteral("PPL "));
        QVERIFY(ppl > 0 && showsRounded(line.mid(ppl + 4), kl.ppl_test));
        const int fp = line.indexOf(QStringLiteral("(fp "));
        QVERIFY(fp > 0 && showsRounded(line.mid(fp + 4), kl.ppl_ref));
        firstKl_ = kl.kl_mean;
        firstBpw_ = session()->totalBitsPerWeight();
    }

    // A second quantize shows its change from the first (same protocol: no warning).
    void deltaToThePreviousEvaluation() {
        w_->setProjectFile(dir_.filePath(QStringLiteral("project.h5")));
        QVERIFY(!summary()->noteText().contains(QStringLiteral("not saved")));
        QVERIFY(finish(quantize(QStringLiteral("rtn:b=2,g=32"))));
        const quench::KlReport& kl = session()->klReport();
        QVERIFY(summary()->rowShown(ResultsSummary::DeltaRow));
        const double dkl = value(summary()->cell(ResultsSummary::DeltaRow, ResultsSummary::KlField));
        QCOMPARE(dkl, kl.kl_mean - firstKl_);
        QVERIFY2(dkl > 0, "2-bit RTN should lose more than 4-bit");
        QVERIFY(showsRounded(summary()->cell(ResultsSummary::DeltaRow, ResultsSummary::KlField)->text(), dkl));
        QCOMPARE(value(summary()->cell(ResultsSummary::DeltaRow, ResultsSummary::BitsField)),
                 session()->totalBitsPerWeight() - firstBpw_);
        QVERIFY(session()->totalBitsPerWeight() < firstBpw_);
        QVERIFY2(!summary()->noteText().contains(QStringLiteral("not comparable")), qPrintable(summary()->noteText()));
    }

    // Run > Evaluate KL ends with the KL in the status bar; under another token count its delta is flagged.
    void evaluateShowsKlInStatusBar() {
        w_->dataPanel()->setEvalTokens(kOtherEvalTokens);
        w_->statusBar()->clearMessage();
        QVERIFY(finish(w_->evaluate()));
        const quench::KlReport& kl = session()->klReport();
        QCOMPARE(kl.protocol.text_tokens, int64_t(kOtherEvalTokens));
        const QString line = w_->statusBar()->currentMessage();
        QVERIFY2(line.startsWith(QStringLiteral("KL ")) && showsRounded(line.mid(3), kl.kl_mean), qPrintable(line));
        QCOMPARE(value(summary()->cell(ResultsSummary::LatestRow, ResultsSummary::KlField)), kl.kl_mean);
        QVERIFY(summary()->titleText().contains(QStringLiteral("Evaluate KL")));
        const QString note = summary()->noteText();
        QVERIFY2(note.contains(QStringLiteral("not comparable")) && note.contains(QStringLiteral("%1 tokens").arg(kEvalTokens)) &&
                     note.contains(QStringLiteral("%1 tokens").arg(kOtherEvalTokens)),
                 qPrintable(note));
        w_->dataPanel()->setEvalTokens(kEvalTokens);
    }

    // Compare shows each run's protocol and warns exactly when they differ.
    void compareWarnsOnProtocolMismatch() {
        QVERIFY(finish(quantize(QStringLiteral("rtn:b=4,g=32"))));  // a third run, at the first protocol
        const QString project = dir_.filePath(QStringLiteral("project.h5"));
        const auto runs = listRuns(project);
        QCOMPARE(runs.size(), std::size_t(3));  // quantize (512), eval (300), quantize (512)
        // What core recorded, read independently of the panel.
        const auto store = quench::RunStore::open(project.toStdString());
        std::vector<int64_t> tokens;
        for (const auto& r : runs) tokens.push_back(quench::read_kl_report(store.read(r.id.toStdString())).protocol.text_tokens);
        QCOMPARE(tokens, (std::vector<int64_t>{kEvalTokens, kOtherEvalTokens, kEvalTokens}));

        ResultsPanel* panel = w_->resultsPanel();
        QVERIFY(panel->compare(project, runs[0].id, project, runs[2].id));
        QVERIFY2(panel->protocolWarning().isEmpty(), qPrintable(panel->protocolWarning()));
        QVERIFY(panel->summaryText().contains(QStringLiteral("%1 tokens of tinystories_val.eval.txt at ctx %2").arg(kEvalTokens).arg(kContext)));

        QVERIFY(panel->compare(project, runs[0].id, project, runs[1].id));
        const QString warning = panel->protocolWarning();
        QVERIFY2(warning.startsWith(QStringLiteral("KL not comparable")), qPrintable(warning));
        QVERIFY2(warning.contains(QStringLiteral("A used %1 tokens").arg(tokens[0])) &&
                     warning.contains(QStringLiteral("B %1 tokens").arg(tokens[1])),
                 qPrintable(warning));
        QVERIFY(errors_.isEmpty());
    }

    // Sensitivity on the quantized layers: the best uniform setting at no more bits, its KL predicted.
    void predictsTheBestUniformSetting() {
        const QStringList candidates{QStringLiteral("rtn:b=4,g=32"), QStringLiteral("rtn:b=3,g=32"), QStringLiteral("rtn:b=2,g=32")};
        w_->methodPanel()->setCandidates(candidates);
        QVERIFY(finish(w_->measureSensitivity()));
        QVERIFY(finish(quantize(QStringLiteral("rtn:b=3,g=32"))));
        const double bpw = session()->totalBitsPerWeight();
        // Expected: of the candidates costing no more bits than the run, the least sum of measured layer KLs.
        QString bestSpec;
        double bestKl = 0;
        for (const QString& c : candidates) {
            const std::string spec = quench::CodecSpec::parse(c.toStdString()).to_string();
            double sum = 0;
            for (std::size_t l : layers_) {
                const auto* p = session()->measurements().find(session()->layers().at(l).name, spec);
                QVERIFY(p && p->has_kl);
                sum += p->kl;
            }
            if (session()->estimateBitsPerWeight(spec, layers_) > bpw * (1 + 1e-12)) continue;
            if (bestSpec.isEmpty() || sum < bestKl) {
                bestSpec = QString::fromStdString(spec);
                bestKl = sum;
            }
        }
        QVERIFY(!bestSpec.isEmpty());
        QVERIFY(summary()->rowShown(ResultsSummary::UniformRow));
        QCOMPARE(value(summary()->cell(ResultsSummary::UniformRow, ResultsSummary::KlField)), bestKl);
        QVERIFY2(summary()->uniformText().contains(bestSpec + QStringLiteral(" on every quantized layer")),
                 qPrintable(summary()->uniformText()));
        QVERIFY(summary()->uniformText().contains(QStringLiteral("predict")));
        // The summary at its widest (every row shown) fits the Results tab at 1280 x 800: nothing grows the window.
        w_->showResults();
        QTest::qWait(50);
        QCOMPARE(w_->size(), QSize(1280, 800));
        QVERIFY2(summary()->minimumSizeHint().width() <= w_->resultsPanel()->width(),
                 qPrintable(QStringLiteral("summary needs %1 px, tab has %2").arg(summary()->minimumSizeHint().width())
                                .arg(w_->resultsPanel()->width())));
        QVERIFY2(!test::screenshot(*w_, QStringLiteral("results-summary")).isEmpty(), "screenshot not written at 1280 x 800");
    }

    // Without evaluation text the summary and the status bar say why there is no KL.
    void noEvaluationTextSaysSo() {
        w_->dataPanel()->setEvalPath(QString());
        QVERIFY(finish(quantize(QStringLiteral("rtn:b=4,g=32"))));
        QVERIFY(!session()->hasKl());
        QVERIFY2(w_->statusBar()->currentMessage().contains(QStringLiteral("evaluation text (Data panel)")),
                 qPrintable(w_->statusBar()->currentMessage()));
        QVERIFY2(summary()->noteText().contains(QStringLiteral("not evaluated")), qPrintable(summary()->noteText()));
        QVERIFY(summary()->titleText().contains(QStringLiteral("before the latest result")));
        w_->dataPanel()->setEvalPath(test::evalText());
    }

    // Ctrl+E exports while the layer filter (a line edit, which takes Ctrl+E as "end of line") has focus.
    void shortcutsWorkInTheLayerFilter() {
        w_->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(w_));
        QLineEdit* filter = nullptr;
        for (auto* e : w_->modelPanel()->findChildren<QLineEdit*>())
            if (e->placeholderText().startsWith(QStringLiteral("Select layers"))) filter = e;
        QVERIFY(filter);
        X11LineEditKeys x11(filter);
        filter->installEventFilter(&x11);
        filter->setFocus();
        QTRY_VERIFY(filter->hasFocus());
        QVERIFY(!w_->findChild<ExportDialog*>());
        QTest::keyClick(filter, Qt::Key_E, Qt::ControlModifier);
        ExportDialog* dialog = nullptr;
        QTRY_VERIFY((dialog = w_->findChild<ExportDialog*>()) && dialog->isVisible());
        dialog->reject();
        QTRY_VERIFY(!w_->findChild<ExportDialog*>());  // deleted on close
        filter->removeEventFilter(&x11);
    }

    // Ctrl+Q while a job runs asks: Keep Working leaves everything running; Cancel Jobs and Quit does both.
    void quitAsksWhileAJobRuns() {
        JobRunner* job = w_->jobs()->enqueue(QStringLiteral("Block"), [](quench::ProgressSink& p) {
            for (;;) {
                p.check();
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        });
        QTRY_COMPARE(job->state(), JobRunner::State::Running);
        w_->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(w_));
        // Answer as a user would, once the question is up.
        QString asked;
        auto answer = [this, &asked](const QString& button) {
            QTimer::singleShot(50, this, [this, &asked, button] {
                QMessageBox* box = w_->quitQuestion();
                if (!box) return;
                asked = box->text();
                for (auto* b : box->findChildren<QPushButton*>())
                    if (b->text().remove(QLatin1Char('&')) == button) b->click();
            });
        };
        answer(QStringLiteral("Keep Working"));
        QTest::keyClick(w_, Qt::Key_Q, Qt::ControlModifier);
        QTRY_VERIFY(!asked.isEmpty());  // asked instead of closing
        QTRY_VERIFY(!w_->quitQuestion());
        QVERIFY2(asked.contains(QStringLiteral("1 job")), qPrintable(asked));
        QVERIFY(w_->isVisible());
        QCOMPARE(job->state(), JobRunner::State::Running);

        asked.clear();
        w_->activateWindow();  // the closed box left no window active (offscreen)
        QVERIFY(QTest::qWaitForWindowActive(w_));
        answer(QStringLiteral("Cancel Jobs and Quit"));
        QTest::keyClick(w_, Qt::Key_Q, Qt::ControlModifier);
        QTRY_VERIFY(!asked.isEmpty());
        QTRY_VERIFY(!w_->isVisible());
        QVERIFY(job->waitForEnd(10000));
        QCOMPARE(job->state(), JobRunner::State::Cancelled);
    }
};

QTEST_MAIN(TestResultsSummary)
#include "test_results_summary.moc"
