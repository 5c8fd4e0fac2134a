// quench: the desktop workbench. All behaviour lives in quench_gui (widgets/) so tests can drive it.
#include <QApplication>

#include "main_window.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Quench"));
    QApplication::setOrganizationName(QStringLiteral("Quench"));
    QApplication::setApplicationVersion(QStringLiteral(QUENCH_VERSION));
    quench::gui::MainWindow window;
    window.show();
    return QApplication::exec();
}
