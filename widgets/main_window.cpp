#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QKeyEvent>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>

#include "app_settings.h"
#include "charts/training_curves.h"
#include "chart_tabs.h"
#include "charts/allocation_view.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "eval_summary.h"
#include "export_dialog.h"
#include "job_list_panel.h"
#include "job_queue.h"
#include "job_runner.h"
#include "method_panel.h"
#include "model_panel.h"
#include "results_panel.h"
#include "results_summary.h"
#include "wheel_guard.h"
#include "workbench_session.h"

// The icon lives in resources/quench.qrc, compiled into this static library: its registration must be
// called explicitly (and outside any namespace) or the linker drops it.
static void initQuenchResources() { Q_INIT_RESOURCE(quench); }

namespace quench::gui {

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent),
      jobs_(new JobQueue(this)),
      session_(new WorkbenchSession(jobs_, this)),
      errors_(new ErrorReporter(this)) {
    initQuenchResources();
    WheelGuard::install(this);
    setWindowTitle(QStringLiteral("Quench"));
    setWindowIcon(QIcon(QStringLiteral(":/icons/quench.svg")));
    resize(1280, 800);
    setDockOptions(AnimatedDocks | AllowTabbedDocks | AllowNestedDocks);

    charts_ = new ChartTabs(session_, this);
    resultsPanel_ = new ResultsPanel(errors_, charts_);
    resultsSummary_ = new ResultsSummary(session_, resultsPanel_);
    resultsPanel_->setHeader(resultsSummary_);
    charts_->addTab(resultsPanel_, tr("Results"));
    charts_->setTabToolTip(charts_->count() - 1, tr("Runs of project files, and two runs compared layer by layer"));
    setCentralWidget(charts_);
    buildDocks();
    buildMenus();

    modelStatus_ = new QLabel(tr("No model"), this);
    projectStatus_ = new QLabel(this);
    jobStatus_ = new QLabel(this);
    statusBar()->addPermanentWidget(jobStatus_);
    statusBar()->addPermanentWidget(projectStatus_);
    statusBar()->addPermanentWidget(modelStatus_);
    statusBar()->showMessage(tr("Ready"));

    connect(jobs_, &JobQueue::jobEnded, this, &MainWindow::onJobEnded);
    connect(jobs_, &JobQueue::jobAdded, this, [this](JobRunner* job) {
        connect(job, &JobRunner::progressed, this, &MainWindow::updateJobStatus);
        updateJobStatus();
    });
    connect(session_, &WorkbenchSession::modelLoaded, this, [this] {
        modelStatus_->setText(QFileInfo(session_->modelDir()).fileName());
        modelStatus_->setToolTip(session_->modelSummary());
        methodPanel_->refreshBits();
    });
    connect(session_, &WorkbenchSession::quantized, this, [this] {
        if (session_->layerOutcomes().empty()) return;
        statusBar()->showMessage(tr("Quantized %n layer(s): %1 bits per weight", nullptr, int(session_->layerOutcomes().size()))
                                     .arg(session_->totalBitsPerWeight(), 0, 'f', 3));
    });
    // The numbers a user quantizes for, after every evaluation (quantize, apply and QAT with evaluation text,
    // Evaluate KL); the Results tab's summary has the rest. Without evaluation text, say why there is no KL.
    connect(session_, &WorkbenchSession::evaluated, this, [this] {
        if (!session_->evaluations().empty()) statusBar()->showMessage(summaryLine(session_->evaluations().back()));
    });
    connect(session_, &WorkbenchSession::klSkipped, this, [this](const QString& why) {
        statusBar()->showMessage(tr("%n layer(s) at %1 b/w. %2", nullptr, int(session_->layerOutcomes().size()))
                                     .arg(session_->totalBitsPerWeight(), 0, 'f', 3)
                                     .arg(why));
    });
    // Every job that records a run (quantize, apply, sensitivity, eval, export, QAT) shows it in Results.
    connect(session_, &WorkbenchSession::runRecorded, this, [this](const QString& project) { resultsPanel_->openFile(project); });
    connect(session_, &WorkbenchSession::exported, this, [this](const QString& path, qint64 bytes) {
        statusBar()->showMessage(tr("Exported %1 (%2)").arg(path, QLocale().formattedDataSize(bytes)));
    });
    connect(charts_, &ChartTabs::allocationChanged, this, [this](double bpw, double kl, double bytes) {
        statusBar()->showMessage(tr("Allocation: %1 bits per weight, predicted KL %2 nats, %3")
                                     .arg(bpw, 0, 'f', 3)
                                     .arg(kl, 0, 'g', 4)
                                     .arg(QLocale().formattedDataSize(qint64(bytes))));
    });
    // An infeasible budget replaces the last allocation's message: the bar never shows one the tab does not.
    connect(charts_, &ChartTabs::allocationUnavailable, this,
            [this](const QString& reason) { statusBar()->showMessage(tr("Allocation: %1").arg(reason)); });
    restoreLayout();
    qApp->installEventFilter(this);  // ShortcutOverride reaches the application's filters first
}

MainWindow::~MainWindow() {
    qApp->removeEventFilter(this);
    // Jobs reference the session; stop them before either goes.
    jobs_->cancelAll();
    jobs_->waitForIdle(30000);
}

QDockWidget* MainWindow::addPanelDock(QWidget* panel, const QString& title, const QString& objectName,
                                      Qt::DockWidgetArea area) {
    auto* dock = new QDockWidget(title, this);
    dock->setObjectName(objectName);  // saveState() keys docks by object name
    dock->setWidget(panel);
    addDockWidget(area, dock);
    return dock;
}

void MainWindow::buildDocks() {
    modelPanel_ = new ModelPanel(session_, this);
    dataPanel_ = new DataPanel(session_, this);
    methodPanel_ = new MethodPanel(session_, this);
    jobPanel_ = new JobListPanel(jobs_, this);
    auto* model = addPanelDock(modelPanel_, tr("Model"), QStringLiteral("modelDock"), Qt::LeftDockWidgetArea);
    auto* dataDock = addPanelDock(dataPanel_, tr("Data"), QStringLiteral("dataDock"), Qt::RightDockWidgetArea);
    // The method form is tall (codec, sensitivity, QAT): it scrolls rather than forcing the window's height.
    auto* methodScroll = new QScrollArea(this);
    methodScroll->setWidget(methodPanel_);
    methodScroll->setWidgetResizable(true);
    methodScroll->setFrameShape(QFrame::NoFrame);
    methodScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    methodScroll->setMinimumWidth(320);
    auto* method = addPanelDock(methodScroll, tr("Method"), QStringLiteral("methodDock"), Qt::RightDockWidgetArea);
    auto* jobs = addPanelDock(jobPanel_, tr("Jobs"), QStringLiteral("jobsDock"), Qt::BottomDockWidgetArea);
    tabifyDockWidget(dataDock, method);
    method->raise();
    modelDock_ = model;
    methodDock_ = method;
    jobsDock_ = jobs;
    modelPanel_->setMinimumWidth(260);

    methodPanel_->setLayersProvider([this] { return modelPanel_->selectedLayers(); });
    modelPanel_->setCurrentSpecProvider([this] { return methodPanel_->spec(); });
    connect(modelPanel_, &ModelPanel::openRequested, this, &MainWindow::openModel);
    connect(modelPanel_, &ModelPanel::selectionChanged, methodPanel_, &MethodPanel::refreshBits);
    connect(modelPanel_, &ModelPanel::selectionChanged, this, [this] {
        const auto layers = modelPanel_->selectedLayers();
        if (!layers.empty()) charts_->showLayerWeights(layers.front());
    });
    connect(methodPanel_, &MethodPanel::quantizeRequested, this, &MainWindow::quantizeSelection);
    connect(methodPanel_, &MethodPanel::sensitivityRequested, this, &MainWindow::measureSensitivity);
    connect(methodPanel_, &MethodPanel::qatRequested, this, [this] { trainQat(false); });
    connect(methodPanel_, &MethodPanel::qatResumeRequested, this, [this] { trainQat(true); });
    connect(dataPanel_, &DataPanel::countRequested, this, [this] { session_->countTokens(); });
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* open = file->addAction(tr("&Open Model..."), this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Open model directory"));
        if (!dir.isEmpty()) openModel(dir);
    });
    open->setShortcut(QKeySequence::Open);
    recentMenu_ = file->addMenu(tr("Open &Recent"));
    refreshRecentMenu();
    QAction* project = file->addAction(tr("&Project File..."), this, &MainWindow::chooseProjectFile);
    project->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_P));
    project->setToolTip(tr("The .h5 file every run of this window is recorded in"));
    QAction* openResults = file->addAction(tr("Open Project &Results..."), this, [this] {
        const QStringList paths = QFileDialog::getOpenFileNames(this, tr("Open project files"), {}, tr("Quench projects (*.h5)"));
        for (const QString& p : paths) resultsPanel_->openFile(p);
        if (!paths.isEmpty()) showResults();
    });
    openResults->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    QAction* exportAction = file->addAction(tr("&Export..."), this, &MainWindow::showExportDialog);
    exportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Q));  // QKeySequence::Quit is empty on some platforms

    QMenu* run = menuBar()->addMenu(tr("&Run"));
    run->addAction(tr("&Quantize Selected Layers"), this, &MainWindow::quantizeSelection)->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
    run->addAction(tr("Measure &Sensitivity"), this, &MainWindow::measureSensitivity)
        ->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
    run->addAction(tr("&Evaluate KL"), this, &MainWindow::evaluate)->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_K));
    run->addAction(tr("&Apply Allocation"), this, &MainWindow::applyAllocation)->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_L));
    run->addAction(tr("&Count Tokens"), this, [this] { session_->countTokens(); });
    run->addSeparator();
    run->addAction(tr("Cancel &All Jobs"), jobs_, &JobQueue::cancelAll)->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Period));

    viewMenu_ = menuBar()->addMenu(tr("&View"));
    for (auto* dock : findChildren<QDockWidget*>()) viewMenu_->addAction(dock->toggleViewAction());
    viewMenu_->addSeparator();
    viewMenu_->addAction(tr("&Results"), this, &MainWindow::showResults)->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_3));
    viewMenu_->addAction(tr("Reset &Layout"), this, &MainWindow::resetLayout);

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About Quench"), this, [this] {
        auto* box = new QMessageBox(QMessageBox::Information, tr("About Quench"),
                                    tr("Quench %1\nAn LLM quantization workbench.").arg(QApplication::applicationVersion()),
                                    QMessageBox::Ok, this);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
    });
}

void MainWindow::restoreLayout() {
    defaultState_ = saveState();
    QSettings s;
    restoreGeometry(s.value(AppSettings::geometryKey()).toByteArray());
    layoutRestored_ = restoreState(s.value(AppSettings::stateKey()).toByteArray());
    const QString codec = AppSettings::value(AppSettings::codecKey());
    if (!codec.isEmpty()) methodPanel_->setSpecText(codec);
}

void MainWindow::closeEvent(QCloseEvent* event) {
    // Closing cancels every job: while one is queued or running, ask first (Ctrl+Q mid-run used to just quit).
    if (jobs_->busy() && !quitConfirmed_) {
        event->ignore();
        askToQuit();
        return;
    }
    QSettings s;
    s.setValue(AppSettings::geometryKey(), saveGeometry());
    s.setValue(AppSettings::stateKey(), saveState());
    if (methodPanel_->isValid()) AppSettings::setValue(AppSettings::codecKey(), methodPanel_->spec());
    jobs_->cancelAll();
    QMainWindow::closeEvent(event);
}

void MainWindow::askToQuit() {
    if (quitBox_) return;  // already asking
    int active = 0;
    for (const JobRunner* job : jobs_->jobs()) active += job->isActive() ? 1 : 0;
    quitBox_ = new QMessageBox(QMessageBox::Question, tr("Quit Quench?"),
                               tr("%n job(s) still running or queued. Quitting cancels them; a cancelled job's run "
                                  "is recorded as cancelled.", nullptr, active),
                               QMessageBox::NoButton, this);
    QPushButton* quit = quitBox_->addButton(tr("Cancel Jobs and Quit"), QMessageBox::DestructiveRole);
    QPushButton* keep = quitBox_->addButton(tr("Keep Working"), QMessageBox::RejectRole);
    quitBox_->setDefaultButton(keep);
    quitBox_->setEscapeButton(keep);
    quitBox_->setAttribute(Qt::WA_DeleteOnClose);
    connect(quitBox_, &QMessageBox::finished, this, [this, quit] {
        const bool confirmed = quitBox_->clickedButton() == quit;
        quitBox_ = nullptr;
        if (!confirmed) return;
        quitConfirmed_ = true;
        jobs_->cancelAll();
        // Closed from the event loop, not from inside the box's own signal.
        QMetaObject::invokeMethod(this, &QWidget::close, Qt::QueuedConnection);
    });
    quitBox_->open();  // window-modal, no nested event loop
}

QMessageBox* MainWindow::quitQuestion() const { return quitBox_; }

bool MainWindow::eventFilter(QObject* watched, QEvent* event) {
    // A focused line edit claims keys such as Ctrl+E (end of line) and Ctrl+K (delete to end of line) on X11
    // by accepting ShortcutOverride, which silences the window's Export and Evaluate shortcuts. In this
    // window (docks included, floating or not) the window's own shortcuts win: the override is refused.
    if (event->type() != QEvent::ShortcutOverride) return QMainWindow::eventFilter(watched, event);
    auto* widget = qobject_cast<QWidget*>(watched);
    QWidget* top = widget ? widget->window() : nullptr;
    if (auto* dock = qobject_cast<QDockWidget*>(top)) top = dock->parentWidget();
    if (top != this) return QMainWindow::eventFilter(watched, event);
    const QKeySequence keys(static_cast<QKeyEvent*>(event)->keyCombination());
    for (const QAction* action : findChildren<QAction*>())
        if (action->isEnabled() && action->shortcuts().contains(keys)) {
            event->ignore();
            return true;
        }
    return QMainWindow::eventFilter(watched, event);
}

void MainWindow::showEvent(QShowEvent* event) {
    QMainWindow::showEvent(event);
    if (layoutRestored_) return;
    layoutRestored_ = true;
    sizeDocks();
}

void MainWindow::sizeDocks() {
    // Docks sized so the charts keep most of the width (resizeDocks needs a laid-out window).
    resizeDocks({modelDock_, methodDock_}, {width() * 25 / 100, width() * 23 / 100}, Qt::Horizontal);
    resizeDocks({jobsDock_}, {height() / 5}, Qt::Vertical);
}

void MainWindow::resetLayout() {
    // The arrangement the window was built with (every dock shown, docked where buildDocks put it), at the
    // first start's sizes. closeEvent stores it, as it stores any layout.
    restoreState(defaultState_);
    if (isVisible()) sizeDocks();
    else layoutRestored_ = false;  // sized when first shown
}

void MainWindow::refreshRecentMenu() {
    recentMenu_->clear();
    for (const QString& dir : AppSettings::recentModels()) recentMenu_->addAction(dir, this, [this, dir] { openModel(dir); });
    recentMenu_->setEnabled(!recentMenu_->isEmpty());
    if (modelPanel_) modelPanel_->refreshRecent();
}

JobRunner* MainWindow::openModel(const QString& dir) {
    JobRunner* job = session_->loadModel(dir);
    connect(job, &JobRunner::finished, this, [this, dir] {
        AppSettings::addRecentModel(QFileInfo(dir).absoluteFilePath());
        refreshRecentMenu();
        statusBar()->showMessage(tr("Loaded %1").arg(dir));
    });
    return job;
}

JobRunner* MainWindow::quantizeSelection() {
    if (!session_->hasModel()) {
        errors_->report(tr("Cannot quantize"), tr("Open a model first."));
        return nullptr;
    }
    const auto layers = modelPanel_->selectedLayers();
    if (layers.empty()) {
        errors_->report(tr("Cannot quantize"), tr("Select the layers to quantize in the Model panel."));
        return nullptr;
    }
    if (!methodPanel_->isValid()) {
        errors_->report(tr("Cannot quantize"), methodPanel_->validationMessage());
        return nullptr;
    }
    return hintProjectFile(session_->quantize(layers, methodPanel_->spec()));
}

JobRunner* MainWindow::measureSensitivity() {
    if (!session_->hasModel()) {
        errors_->report(tr("Cannot measure sensitivity"), tr("Open a model first."));
        return nullptr;
    }
    const auto layers = modelPanel_->selectedLayers();
    if (layers.empty()) {
        errors_->report(tr("Cannot measure sensitivity"), tr("Select the layers to measure in the Model panel."));
        return nullptr;
    }
    return hintProjectFile(session_->measureSensitivity(layers, methodPanel_->candidates()));
}

JobRunner* MainWindow::trainQat(bool resume) {
    if (!session_->hasModel()) {
        errors_->report(resume ? tr("Cannot resume training") : tr("Cannot train"), tr("Open a model first."));
        return nullptr;
    }
    QatRequest request = methodPanel_->qatRequest();
    request.resume = resume;
    JobRunner* job = hintProjectFile(session_->trainQat(request));
    charts_->showChart(charts_->training());
    return job;
}

JobRunner* MainWindow::evaluate() {
    if (!session_->hasModel()) {
        errors_->report(tr("Cannot evaluate"), tr("Open a model first."));
        return nullptr;
    }
    return hintProjectFile(session_->evaluate());
}

JobRunner* MainWindow::applyAllocation() {
    const auto* allocation = charts_->currentAllocation();
    if (!allocation) {
        // The Allocation tab knows why it has none (no measurements, infeasible pins, a budget too low).
        const QString why = charts_->allocation() ? charts_->allocation()->unavailableReason() : QString();
        errors_->report(tr("Cannot apply allocation"),
                        why.isEmpty() ? tr("Measure sensitivity first, then choose a budget in the Allocation tab.") : why);
        return nullptr;
    }
    return hintProjectFile(session_->applyAllocation(*allocation));
}

void MainWindow::setProjectFile(const QString& path) {
    session_->setProjectPath(path);
    projectStatus_->setText(path.isEmpty() ? QString() : QFileInfo(path).fileName());
    projectStatus_->setToolTip(tr("Runs are recorded in %1").arg(path));
    if (!path.isEmpty()) AppSettings::addRecentProject(path);
    resultsSummary_->refresh();  // drops (or brings back) its "runs are not saved" note
}

JobRunner* MainWindow::hintProjectFile(JobRunner* job) {
    // Without a project file a run's results live only until the next job: say once how to keep them (the
    // Results summary keeps saying it quietly).
    if (projectHinted_ || !session_->projectPath().isEmpty()) return job;
    projectHinted_ = true;
    statusBar()->showMessage(tr("Runs are not saved: File > Project File... (Ctrl+Shift+P) records them for Results "
                                "and Compare"), 15000);
    return job;
}

void MainWindow::chooseProjectFile() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Project file for runs"), session_->projectPath(),
                                                      tr("Quench projects (*.h5)"), nullptr, QFileDialog::DontConfirmOverwrite);
    if (!path.isEmpty()) setProjectFile(path);
}

void MainWindow::showExportDialog() {
    if (!session_->hasModel()) {
        errors_->report(tr("Cannot export"), tr("Open a model first."));
        return;
    }
    auto* dialog = new ExportDialog(session_, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] { session_->exportModel(dialog->request()); });
    dialog->open();
}

void MainWindow::showResults() { charts_->showChart(resultsPanel_); }

void MainWindow::onJobEnded(JobRunner* job) {
    if (job->state() == JobRunner::State::Failed) errors_->report(tr("%1 failed").arg(job->name()), job->errorMessage());
    else if (job->state() == JobRunner::State::Cancelled) statusBar()->showMessage(tr("%1: cancelled").arg(job->name()));
    updateJobStatus();
}

void MainWindow::updateJobStatus() {
    JobRunner* job = jobs_->current();
    if (!job) {
        jobStatus_->clear();
        return;
    }
    jobStatus_->setText(tr("%1: %2%").arg(job->name()).arg(int(job->fraction() * 100)));
}

}  // namespace quench::gui
