#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>

#include "app_settings.h"
#include "charts/training_curves.h"
#include "chart_tabs.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "export_dialog.h"
#include "job_list_panel.h"
#include "job_queue.h"
#include "job_runner.h"
#include "method_panel.h"
#include "model_panel.h"
#include "results_panel.h"
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
    restoreLayout();
}

MainWindow::~MainWindow() {
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
    auto* data = addPanelDock(dataPanel_, tr("Data"), QStringLiteral("dataDock"), Qt::RightDockWidgetArea);
    // The method form is tall (codec, sensitivity, QAT): it scrolls rather than forcing the window's height.
    auto* methodScroll = new QScrollArea(this);
    methodScroll->setWidget(methodPanel_);
    methodScroll->setWidgetResizable(true);
    methodScroll->setFrameShape(QFrame::NoFrame);
    methodScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    methodScroll->setMinimumWidth(320);
    auto* method = addPanelDock(methodScroll, tr("Method"), QStringLiteral("methodDock"), Qt::RightDockWidgetArea);
    auto* jobs = addPanelDock(jobPanel_, tr("Jobs"), QStringLiteral("jobsDock"), Qt::BottomDockWidgetArea);
    tabifyDockWidget(data, method);
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
    QSettings s;
    s.setValue(AppSettings::geometryKey(), saveGeometry());
    s.setValue(AppSettings::stateKey(), saveState());
    if (methodPanel_->isValid()) AppSettings::setValue(AppSettings::codecKey(), methodPanel_->spec());
    jobs_->cancelAll();
    QMainWindow::closeEvent(event);
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
    return session_->quantize(layers, methodPanel_->spec());
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
    return session_->measureSensitivity(layers, methodPanel_->candidates());
}

JobRunner* MainWindow::trainQat(bool resume) {
    if (!session_->hasModel()) {
        errors_->report(resume ? tr("Cannot resume training") : tr("Cannot train"), tr("Open a model first."));
        return nullptr;
    }
    QatRequest request = methodPanel_->qatRequest();
    request.resume = resume;
    JobRunner* job = session_->trainQat(request);
    charts_->showChart(charts_->training());
    return job;
}

JobRunner* MainWindow::evaluate() {
    if (!session_->hasModel()) {
        errors_->report(tr("Cannot evaluate"), tr("Open a model first."));
        return nullptr;
    }
    return session_->evaluate();
}

JobRunner* MainWindow::applyAllocation() {
    const auto* allocation = charts_->currentAllocation();
    if (!allocation) {
        errors_->report(tr("Cannot apply allocation"), tr("Measure sensitivity first, then choose a budget in the Allocation tab."));
        return nullptr;
    }
    return session_->applyAllocation(*allocation);
}

void MainWindow::setProjectFile(const QString& path) {
    session_->setProjectPath(path);
    projectStatus_->setText(path.isEmpty() ? QString() : QFileInfo(path).fileName());
    projectStatus_->setToolTip(tr("Runs are recorded in %1").arg(path));
    if (!path.isEmpty()) AppSettings::addRecentProject(path);
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
