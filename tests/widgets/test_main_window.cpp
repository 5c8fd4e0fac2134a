// The window opens offscreen with its title, menus, docks and status bar; its layout round-trips through
// QSettings and View > Reset Layout brings the first-start arrangement back (stored on close); no chart tab
// scrolls sideways at 1280 x 800 (empty, with a whole model measured, and with an 11 pt desktop font);
// refused requests (nothing loaded) report an error instead of crashing; a bad model directory ends in an
// error report carrying core's message.
#include <QApplication>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QMenuBar>
#include <QMessageBox>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QStatusBar>
#include <QWheelEvent>
#include <QtTest>

#include <cstdlib>

#include "app_settings.h"
#include "chart_tabs.h"
#include "charts/allocation_view.h"
#include "charts/rate_distortion_chart.h"
#include "charts/sensitivity_heatmap.h"
#include "error_reporter.h"
#include "gui_test_support.h"
#include "job_runner.h"
#include "main_window.h"
#include "synthetic_measurements.h"
#include "workbench_session.h"

using namespace quench::gui;

namespace {

// Where each dock is, as the View menu and the dock areas show it: area, shown (its View action checked),
// on screen (the raised tab of a tabbed group), floating, and the docks tabbed with it.
QString arrangement(QMainWindow& w) {
    QStringList out;
    for (auto* d : w.findChildren<QDockWidget*>()) {
        QStringList tabs;
        for (auto* t : w.tabifiedDockWidgets(d)) tabs << t->objectName();
        tabs.sort();
        out << QStringLiteral("%1 area=%2 shown=%3 onscreen=%4 floating=%5 tabs=[%6]")
                   .arg(d->objectName())
                   .arg(int(w.dockWidgetArea(d)))
                   .arg(d->toggleViewAction()->isChecked())
                   .arg(d->isVisible())
                   .arg(d->isFloating())
                   .arg(tabs.join(QLatin1Char(',')));
    }
    out.sort();
    return out.join(QLatin1Char('\n'));
}

QAction* menuAction(QMainWindow& w, const QString& menu, const QString& text) {
    for (auto* m : w.menuBar()->actions())
        if (m->text().remove(QLatin1Char('&')) == menu && m->menu())
            for (auto* a : m->menu()->actions())
                if (a->text().remove(QLatin1Char('&')) == text) return a;
    return nullptr;
}

}  // namespace

class TestMainWindow : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        test::isolateSettings();
        QSettings().clear();
    }

    // Issue 17: a wheel turned over the Method dock changed the scale learning rate. Settings take the wheel
    // only with the keyboard focus; unfocused, the wheel goes on to what scrolls them.
    void wheelChangesOnlyAFocusedSetting() {
        MainWindow w;
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        const auto spins = w.findChildren<QDoubleSpinBox*>();
        QVERIFY(!spins.isEmpty());
        const auto wheel = [](QWidget* target, int delta = 120) {
            const QPointF at(target->width() / 2.0, target->height() / 2.0);
            QWheelEvent e(at, target->mapToGlobal(at), QPoint(), QPoint(0, delta), Qt::NoButton, Qt::NoModifier,
                          Qt::NoScrollPhase, false);
            QApplication::sendEvent(target, &e);
        };
        for (QDoubleSpinBox* spin : spins) {
            const double before = spin->value();
            wheel(spin);
            QCOMPARE(spin->value(), before);
            QVERIFY(!spin->hasFocus());
            QCOMPARE(spin->focusPolicy(), Qt::StrongFocus);
        }
        // The codec box (six codecs, the first chosen): a wheel turned down would pick the next one.
        QComboBox* combo = nullptr;
        for (QComboBox* c : w.findChildren<QComboBox*>())
            if (!combo && c->count() > 1 && c->currentIndex() == 0) combo = c;
        QVERIFY(combo);
        wheel(combo, -120);
        QCOMPARE(combo->currentIndex(), 0);
        // With the focus, the wheel steps the value as usual.
        QDoubleSpinBox* spin = nullptr;
        for (QDoubleSpinBox* s : spins)
            if (s->isVisible() && s->isEnabled() && !spin) spin = s;
        QVERIFY(spin);
        w.activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(&w));
        spin->setFocus();
        QTRY_VERIFY(spin->hasFocus());
        const double before = spin->value();
        wheel(spin);
        QVERIFY(spin->value() != before);
    }

    void opensWithTitleMenusDocksAndStatus() {
        MainWindow w;
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QCOMPARE(w.windowTitle(), QStringLiteral("Quench"));
        QStringList menus;
        for (auto* a : w.menuBar()->actions()) menus << a->text().remove(QLatin1Char('&'));
        QCOMPARE(menus, (QStringList{QStringLiteral("File"), QStringLiteral("Run"), QStringLiteral("View"), QStringLiteral("Help")}));
        QCOMPARE(w.statusBar()->currentMessage(), QStringLiteral("Ready"));
        QStringList docks;
        for (auto* d : w.findChildren<QDockWidget*>()) docks << d->objectName();
        docks.sort();
        QCOMPARE(docks, (QStringList{QStringLiteral("dataDock"), QStringLiteral("jobsDock"), QStringLiteral("methodDock"),
                                     QStringLiteral("modelDock")}));
        QVERIFY(!w.windowIcon().isNull());
        // Every chart has a tab (a placeholder when its widget is not in this build), plus Results.
        QCOMPARE(w.charts()->count(), 8);
    }

    void shortcutsAreAssigned() {
        MainWindow w;
        QStringList shortcuts;
        for (auto* menu : w.menuBar()->findChildren<QMenu*>())
            for (auto* a : menu->actions())
                if (!a->shortcut().isEmpty()) shortcuts << a->shortcut().toString(QKeySequence::PortableText);
        for (const char* s : {"Ctrl+O", "Ctrl+R", "Ctrl+Shift+R", "Ctrl+E", "Ctrl+K", "Ctrl+L", "Ctrl+Q"})
            QVERIFY2(shortcuts.contains(QString::fromLatin1(s)), s);
    }

    void layoutRoundTripsThroughSettings() {
        {
            MainWindow w;
            w.show();
            QVERIFY(QTest::qWaitForWindowExposed(&w));
            w.findChild<QDockWidget*>(QStringLiteral("dataDock"))->setFloating(true);
            w.close();
        }
        QVERIFY(!QSettings().value(AppSettings::stateKey()).toByteArray().isEmpty());
        MainWindow again;
        again.show();
        QVERIFY(QTest::qWaitForWindowExposed(&again));
        QVERIFY(again.findChild<QDockWidget*>(QStringLiteral("dataDock"))->isFloating());
        QSettings().remove(AppSettings::stateKey());
    }

    void resetLayoutBringsBackTheDefaultDocks() {
        QSettings().remove(AppSettings::stateKey());
        QSettings().remove(AppSettings::geometryKey());
        QString fresh;
        int modelWidth = 0, jobsHeight = 0;
        {
            MainWindow w;
            w.resize(1280, 800);
            w.show();
            QVERIFY(QTest::qWaitForWindowExposed(&w));
            QCoreApplication::processEvents();
            fresh = arrangement(w);
            auto* model = w.findChild<QDockWidget*>(QStringLiteral("modelDock"));
            auto* data = w.findChild<QDockWidget*>(QStringLiteral("dataDock"));
            auto* jobs = w.findChild<QDockWidget*>(QStringLiteral("jobsDock"));
            modelWidth = model->width();
            jobsHeight = jobs->height();
            QVERIFY(fresh.contains(QStringLiteral("modelDock area=1 shown=1 onscreen=1 floating=0")));

            // Move the model dock to the right, float the data dock, close the jobs dock.
            w.addDockWidget(Qt::RightDockWidgetArea, model);
            data->setFloating(true);
            jobs->toggleViewAction()->trigger();
            QCoreApplication::processEvents();
            QVERIFY(arrangement(w) != fresh);
            QVERIFY(!jobs->toggleViewAction()->isChecked());

            QAction* reset = menuAction(w, QStringLiteral("View"), QStringLiteral("Reset Layout"));
            QVERIFY(reset);
            reset->trigger();
            QCoreApplication::processEvents();
            QCOMPARE(arrangement(w), fresh);
            QVERIFY2(std::abs(model->width() - modelWidth) <= 2, qPrintable(QString::number(model->width())));
            QVERIFY2(std::abs(jobs->height() - jobsHeight) <= 2, qPrintable(QString::number(jobs->height())));
            // Disturb it again and close: the layout saved on close is what the next start restores...
            data->setFloating(true);
            w.close();
        }
        {
            MainWindow again;
            again.resize(1280, 800);
            again.show();
            QVERIFY(QTest::qWaitForWindowExposed(&again));
            QVERIFY(again.findChild<QDockWidget*>(QStringLiteral("dataDock"))->isFloating());
            // ...and Reset Layout there brings back the default, docks sized as on a first start.
            menuAction(again, QStringLiteral("View"), QStringLiteral("Reset Layout"))->trigger();
            QCoreApplication::processEvents();
            QCOMPARE(arrangement(again), fresh);
            QVERIFY(std::abs(again.findChild<QDockWidget*>(QStringLiteral("modelDock"))->width() - modelWidth) <= 2);
            again.close();
        }
        MainWindow third;  // restores the reset layout the previous window stored on close
        third.resize(1280, 800);
        third.show();
        QVERIFY(QTest::qWaitForWindowExposed(&third));
        QCOMPARE(arrangement(third), fresh);
        QSettings().remove(AppSettings::stateKey());
    }

    void noChartTabScrollsSidewaysAt1280x800() {
        QSettings().remove(AppSettings::stateKey());
        MainWindow w;
        w.resize(1280, 800);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        const auto checkEveryTab = [&](const QString& when) {
            for (int i = 0; i < w.charts()->count(); ++i) {
                w.charts()->setCurrentIndex(i);
                QCoreApplication::processEvents();
                auto* scroll = qobject_cast<QScrollArea*>(w.charts()->widget(i));
                if (!scroll) continue;
                const QString tab = when + QStringLiteral(", ") + w.charts()->tabText(i);
                QVERIFY2(!scroll->horizontalScrollBar()->isVisible(), qPrintable(tab));
                QVERIFY2(scroll->horizontalScrollBar()->maximum() == 0,
                         qPrintable(tab + QStringLiteral(": %1 px too wide").arg(scroll->horizontalScrollBar()->maximum())));
            }
        };
        checkEveryTab(QStringLiteral("empty"));
        // Measurements of a whole two-block model (14 layers x 4 settings): six curves in the rate-distortion
        // legend, 14 bars and two codecs in the allocation's.
        const quench::Measurements m = test::syntheticMeasurements(2, {2, 3, 4, 8});
        w.charts()->sensitivity()->setMeasurements(m, quench::CostSource::Auto);
        w.charts()->rateDistortion()->setMeasurements(m);
        w.charts()->allocation()->setMeasurements(m, quench::CostSource::Auto);
        QVERIFY(w.charts()->allocation()->hasAllocation());
        QCOMPARE(w.charts()->rateDistortion()->seriesCount(), 6);
        checkEveryTab(QStringLiteral("14 layers measured"));
        // Desktops often use an 11 pt font where the offscreen platform uses 9 pt: labels widen with it.
        const QFont original = QApplication::font();
        QFont desktop = original;
        desktop.setPointSize(11);
        QApplication::setFont(desktop);
        QCoreApplication::processEvents();
        checkEveryTab(QStringLiteral("11 pt font"));
        QApplication::setFont(original);
    }

    void requestsWithoutAModelReportErrors() {
        MainWindow w;
        QStringList errors;
        w.errors()->setHandler([&](const QString& t, const QString& m) { errors << t + QStringLiteral(": ") + m; });
        QVERIFY(!w.quantizeSelection());
        QVERIFY(!w.measureSensitivity());
        QVERIFY(!w.applyAllocation());
        w.showExportDialog();
        QCOMPARE(errors.size(), 4);
        QVERIFY(errors[0].contains(QStringLiteral("Open a model first")));
    }

    void badModelDirectoryShowsCoresMessage() {
        MainWindow w;
        QStringList errors;
        w.errors()->setHandler([&](const QString& t, const QString& m) { errors << t + QStringLiteral(": ") + m; });
        JobRunner* job = w.openModel(QStringLiteral("/nonexistent/model"));
        QVERIFY(job->waitForEnd(5000));
        QCOMPARE(job->state(), JobRunner::State::Failed);
        QCOMPARE(errors.size(), 1);
        QVERIFY2(errors[0].contains(QStringLiteral("/nonexistent/model")), qPrintable(errors[0]));
        QVERIFY(!w.session()->hasModel());
    }

    void defaultErrorDialogDoesNotBlock() {
        // Without a handler the reporter opens a window-modal box with open(): report() returns at once.
        MainWindow w;
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        w.errors()->report(QStringLiteral("Title"), QStringLiteral("config.json: missing field"));
        auto* box = w.findChild<QMessageBox*>();
        QVERIFY(box);
        QCOMPARE(box->text(), QStringLiteral("config.json: missing field"));
        box->close();
    }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
