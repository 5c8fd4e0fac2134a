#pragma once
// The workbench's main window: composes the panels (each its own class) into docks around the chart tabs,
// owns the menus, shortcuts and status bar, and routes the panels' requests to the session's jobs.
// Layout, recent files and defaults persist in QSettings. No engine work runs here: it all goes through
// WorkbenchSession, whose jobs run on the JobQueue's worker threads. The window's shortcuts work whatever
// widget has focus, and quitting while a job runs asks first.
#include <QMainWindow>

class QAction;
class QDockWidget;
class QLabel;
class QMenu;
class QMessageBox;

namespace quench::gui {

class ChartTabs;
class DataPanel;
class ErrorReporter;
class JobListPanel;
class JobQueue;
class JobRunner;
class MethodPanel;
class ModelPanel;
class ResultsPanel;
class ResultsSummary;
class WorkbenchSession;

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    WorkbenchSession* session() const { return session_; }
    JobQueue* jobs() const { return jobs_; }
    ErrorReporter* errors() const { return errors_; }
    ModelPanel* modelPanel() const { return modelPanel_; }
    DataPanel* dataPanel() const { return dataPanel_; }
    MethodPanel* methodPanel() const { return methodPanel_; }
    JobListPanel* jobPanel() const { return jobPanel_; }
    ResultsPanel* resultsPanel() const { return resultsPanel_; }
    ResultsSummary* resultsSummary() const { return resultsSummary_; }  // top of the Results tab
    QMessageBox* quitQuestion() const;  // open while a close waits for "cancel jobs and quit"; else nullptr
    ChartTabs* charts() const { return charts_; }

    // What the menu actions do, callable by tests without dialogs. Each returns the queued job (or nullptr
    // when the request was refused with an error report).
    JobRunner* openModel(const QString& dir);
    JobRunner* quantizeSelection();
    JobRunner* measureSensitivity();
    JobRunner* evaluate();
    JobRunner* applyAllocation();
    JobRunner* trainQat(bool resume);  // the QAT section's Train (false) and Resume (true)
    void resetLayout();                // View > Reset Layout
    void setProjectFile(const QString& path);
    void showExportDialog();  // non-blocking (open())
    void showResults();       // brings the results tab forward

protected:
    void closeEvent(QCloseEvent* event) override;
    // Keeps line edits from taking the window's shortcuts as editing keys (ShortcutOverride).
    bool eventFilter(QObject* watched, QEvent* event) override;
    void showEvent(QShowEvent* event) override;

private:
    void buildDocks();
    void buildMenus();
    void restoreLayout();
    void sizeDocks();  // the first start's dock sizes
    void refreshRecentMenu();
    void onJobEnded(JobRunner* job);
    void updateJobStatus();
    void chooseProjectFile();
    JobRunner* hintProjectFile(JobRunner* job);  // once: a results job without a project file saves nothing
    void askToQuit();                            // window-modal: cancel the jobs and quit, or keep working
    QDockWidget* addPanelDock(QWidget* panel, const QString& title, const QString& objectName, Qt::DockWidgetArea area);

    JobQueue* jobs_;
    WorkbenchSession* session_;
    ErrorReporter* errors_;
    ModelPanel* modelPanel_ = nullptr;
    DataPanel* dataPanel_ = nullptr;
    MethodPanel* methodPanel_ = nullptr;
    JobListPanel* jobPanel_ = nullptr;
    ResultsPanel* resultsPanel_ = nullptr;
    ResultsSummary* resultsSummary_ = nullptr;
    QMessageBox* quitBox_ = nullptr;
    bool quitConfirmed_ = false;
    bool projectHinted_ = false;
    ChartTabs* charts_ = nullptr;
    QMenu* recentMenu_ = nullptr;
    QMenu* viewMenu_ = nullptr;
    QLabel* modelStatus_ = nullptr;
    QLabel* jobStatus_ = nullptr;
    QLabel* projectStatus_ = nullptr;
    QByteArray defaultState_;
    QDockWidget* modelDock_ = nullptr;
    QDockWidget* methodDock_ = nullptr;
    QDockWidget* jobsDock_ = nullptr;
    bool layoutRestored_ = false;  // a saved layout was restored: keep its dock sizes
};

}  // namespace quench::gui
