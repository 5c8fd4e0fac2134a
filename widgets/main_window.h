#pragma once
// The workbench's main window. For now a shell with a menu and a status bar; the panels, charts and job
// list arrive with the GUI issue and are composed here, each in its own class.
#include <QMainWindow>

namespace quench::gui {

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    explicit MainWindow(QWidget* parent = nullptr);
};

}  // namespace quench::gui
