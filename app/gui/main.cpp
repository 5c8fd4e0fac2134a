// quench: the desktop workbench. All behaviour lives in quench_gui (widgets/) so tests can drive it.
#include <QApplication>
#include <QIcon>

#include "common/heap.h"
#include "main_window.h"

int main(int argc, char** argv) {
    quench::use_bounded_heap();
    // Fractional scale factors (150%) as the desktop sets them, rather than rounded to whole numbers.
    QGuiApplication::setHighDpiScaleFactorRoundingPolicy(Qt::HighDpiScaleFactorRoundingPolicy::PassThrough);
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Quench"));
    QApplication::setOrganizationName(QStringLiteral("Quench"));
    QApplication::setApplicationVersion(QStringLiteral(QUENCH_VERSION));
    QApplication::setDesktopFileName(QStringLiteral("quench"));
    quench::gui::MainWindow window;
    QApplication::setWindowIcon(window.windowIcon());
    window.show();
    // A model directory on the command line opens at start.
    const QStringList args = QApplication::arguments();
    if (args.size() > 1) window.openModel(args.at(1));
    return QApplication::exec();
}
