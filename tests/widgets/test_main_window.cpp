// The window opens offscreen with its title, menu and status bar.
#include <QMenuBar>
#include <QStatusBar>
#include <QtTest>

#include "main_window.h"

class TestMainWindow : public QObject {
    Q_OBJECT

private slots:
    void opensWithTitleMenuAndStatus() {
        quench::gui::MainWindow w;
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QCOMPARE(w.windowTitle(), QStringLiteral("Quench"));
        QCOMPARE(w.menuBar()->actions().size(), 1);
        QCOMPARE(w.statusBar()->currentMessage(), QStringLiteral("Ready"));
    }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
