#include "results_panel.h"

#include <tuple>

#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSplitter>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "error_reporter.h"
#include "model/layer_registry.h"
#include "run_comparison.h"

namespace quench::gui {

namespace {
QString num(double v, int precision = 4) { return QString::number(v, 'g', precision); }
QString signedNum(double v) { return (v > 0 ? QStringLiteral("+") : QString()) + num(v); }
QString key(const QString& file, const QString& id) { return file + QLatin1Char('|') + id; }
}  // namespace

ResultsPanel::ResultsPanel(ErrorReporter* errors, QWidget* parent) : QWidget(parent), errors_(errors) {
    auto* open = new QPushButton(tr("Open project..."), this);
    open->setToolTip(tr("Open a project file (.h5) that quench-cli or this window recorded runs in; several can be open"));
    connect(open, &QPushButton::clicked, this, &ResultsPanel::browse);
    auto* reloadButton = new QPushButton(tr("Reload"), this);
    reloadButton->setToolTip(tr("Read the open project files again (a run in progress updates its sidecar)"));
    connect(reloadButton, &QPushButton::clicked, this, &ResultsPanel::reload);

    runs_ = new QTreeWidget(this);
    runs_->setColumnCount(RunColumnCount);
    runs_->setHeaderLabels({tr("File"), tr("Run"), tr("Kind"), tr("Status"), tr("Bits/weight"), tr("Started (UTC)")});
    runs_->headerItem()->setToolTip(StatusCol, tr("running: its writer is active; incomplete: its writer stopped "
                                                 "without finishing (the run stays in the project's sidecar folder)"));
    runs_->headerItem()->setToolTip(BpwCol, tr("Total bits per weight over the run's quantized layers"));
    runs_->setRootIsDecorated(false);
    runs_->setSelectionMode(QAbstractItemView::ExtendedSelection);

    runA_ = new QComboBox(this);
    runB_ = new QComboBox(this);
    runA_->setToolTip(tr("Baseline run (A)"));
    runB_->setToolTip(tr("Run compared with A (B); deltas are B - A"));
    auto* compareButton = new QPushButton(tr("Compare"), this);
    connect(compareButton, &QPushButton::clicked, this, &ResultsPanel::compareSelected);
    connect(runs_, &QTreeWidget::itemSelectionChanged, this, [this] {
        // Selecting two runs in the list makes them A and B.
        const auto items = runs_->selectedItems();
        if (items.size() != 2) return;
        runA_->setCurrentIndex(runA_->findData(key(items[0]->data(FileCol, Qt::UserRole).toString(), items[0]->text(IdCol))));
        runB_->setCurrentIndex(runB_->findData(key(items[1]->data(FileCol, Qt::UserRole).toString(), items[1]->text(IdCol))));
    });

    compare_ = new QTreeWidget(this);
    compare_->setColumnCount(CompareColumnCount);
    compare_->setHeaderLabels({tr("Layer"), tr("Spec A"), tr("Spec B"), tr("Bits A"), tr("Bits B"), tr("Δ bits"),
                               tr("Error A"), tr("Error B"), tr("Δ error"), tr("Δ SQNR dB")});
    compare_->headerItem()->setToolTip(DeltaErrCol, tr("Change of the relative weight error ||W - W'||_F / ||W||_F, B - A; "
                                                      "negative: B is closer to the original"));
    compare_->headerItem()->setToolTip(DeltaSqnrCol, tr("Change of the signal-to-quantization-noise ratio, B - A; "
                                                       "positive: B is better"));
    compare_->setRootIsDecorated(false);
    summary_ = new QLabel(this);
    summary_->setWordWrap(true);
    // KL from 2048 tokens next to KL from 37k tokens looks comparable and is not: say so where both are read.
    protocolWarning_ = new QLabel(this);
    protocolWarning_->setWordWrap(true);
    protocolWarning_->setStyleSheet(QStringLiteral("QLabel { color: #b8500f; font-weight: bold; }"));
    protocolWarning_->hide();

    auto* top = new QHBoxLayout;
    top->addWidget(open);
    top->addWidget(reloadButton);
    top->addStretch();
    auto* pick = new QHBoxLayout;
    pick->addWidget(new QLabel(tr("A"), this));
    pick->addWidget(runA_, 1);
    pick->addWidget(new QLabel(tr("B"), this));
    pick->addWidget(runB_, 1);
    pick->addWidget(compareButton);
    auto* lower = new QWidget(this);
    auto* ll = new QVBoxLayout(lower);
    ll->setContentsMargins(0, 0, 0, 0);
    ll->addLayout(pick);
    ll->addWidget(summary_);
    ll->addWidget(protocolWarning_);
    ll->addWidget(compare_, 1);
    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(runs_);
    split->addWidget(lower);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(split, 1);
}

void ResultsPanel::browse() {
    const QStringList paths = QFileDialog::getOpenFileNames(this, tr("Open project files"), {}, tr("Quench projects (*.h5);;All files (*)"));
    for (const QString& p : paths) openFile(p);
}

bool ResultsPanel::openFile(const QString& path) {
    const QString abs = QFileInfo(path).absoluteFilePath();
    std::vector<RunView> runs;
    try {
        runs = listRuns(abs);
    } catch (const std::exception& e) {
        errors_->report(tr("Cannot open project"), QString::fromUtf8(e.what()));
        return false;
    }
    if (!files_.contains(abs)) files_ << abs;
    // Replace this file's rows.
    for (int i = runs_->topLevelItemCount() - 1; i >= 0; --i)
        if (runs_->topLevelItem(i)->data(FileCol, Qt::UserRole).toString() == abs) delete runs_->takeTopLevelItem(i);
    for (const auto& r : runs) {
        auto* item = new QTreeWidgetItem(runs_);
        item->setText(FileCol, QFileInfo(abs).fileName());
        item->setData(FileCol, Qt::UserRole, abs);
        item->setToolTip(FileCol, abs);
        item->setText(IdCol, r.id);
        item->setText(KindCol, r.kind);
        item->setText(StatusCol, r.status);
        if (!r.message.isEmpty()) item->setToolTip(StatusCol, r.message);
        item->setText(BpwCol, r.totalBpw >= 0 ? num(r.totalBpw) : QString());
        item->setText(StartedCol, r.started);
        item->setToolTip(IdCol, r.commandLine);
    }
    rebuildBoxes();
    emit fileOpened(abs);
    return true;
}

void ResultsPanel::reload() {
    const QStringList files = files_;
    for (const QString& f : files) openFile(f);
}

int ResultsPanel::runCount() const { return runs_->topLevelItemCount(); }

void ResultsPanel::rebuildBoxes() {
    for (QComboBox* box : {runA_, runB_}) {
        const QString current = box->currentData().toString();
        box->clear();
        for (int i = 0; i < runs_->topLevelItemCount(); ++i) {
            auto* item = runs_->topLevelItem(i);
            const QString file = item->data(FileCol, Qt::UserRole).toString();
            box->addItem(item->text(FileCol) + QLatin1Char(':') + item->text(IdCol) + QStringLiteral(" (") +
                             item->text(KindCol) + QLatin1Char(')'),
                         key(file, item->text(IdCol)));
        }
        const int keep = box->findData(current);
        if (keep >= 0) box->setCurrentIndex(keep);
    }
    if (runB_->count() > 1 && runB_->currentIndex() == runA_->currentIndex()) runB_->setCurrentIndex(runB_->count() - 1);
}

void ResultsPanel::compareSelected() {
    const QStringList a = runA_->currentData().toString().split(QLatin1Char('|'));
    const QStringList b = runB_->currentData().toString().split(QLatin1Char('|'));
    if (a.size() != 2 || b.size() != 2) return;
    compare(a[0], a[1], b[0], b[1]);
}

bool ResultsPanel::compare(const QString& fileA, const QString& runA, const QString& fileB, const QString& runB) {
    RunView a, b;
    try {
        a = loadRun(fileA, runA);
        b = loadRun(fileB, runB);
    } catch (const std::exception& e) {
        errors_->report(tr("Cannot compare runs"), QString::fromUtf8(e.what()));
        return false;
    }
    // The A / B boxes name the runs compared, however the comparison was asked for.
    for (auto [box, file, id] : {std::tuple{runA_, fileA, runA}, std::tuple{runB_, fileB, runB}})
        if (const int i = box->findData(key(QFileInfo(file).absoluteFilePath(), id)); i >= 0) box->setCurrentIndex(i);
    compare_->clear();
    for (const auto& d : compareRuns(a, b)) {
        auto* item = new QTreeWidgetItem(compare_);
        item->setText(LayerCol, QString::fromStdString(quench::short_layer_name(d.layer.toStdString())));
        item->setToolTip(LayerCol, d.layer);
        if (d.inA) {
            item->setText(SpecACol, d.a.spec);
            item->setText(BitsACol, num(d.a.bitsPerWeight));
            item->setText(ErrACol, num(d.a.relError));
        }
        if (d.inB) {
            item->setText(SpecBCol, d.b.spec);
            item->setText(BitsBCol, num(d.b.bitsPerWeight));
            item->setText(ErrBCol, num(d.b.relError));
        }
        if (d.inA && d.inB) {
            item->setText(DeltaBitsCol, signedNum(d.deltaBits()));
            item->setText(DeltaErrCol, signedNum(d.deltaRelError()));
            item->setText(DeltaSqnrCol, signedNum(d.deltaSqnrDb()));
            // Colour only the error delta: it is the column a reader scans.
            const QColor better(40, 150, 60), worse(200, 60, 50);
            if (d.deltaRelError() != 0) item->setForeground(DeltaErrCol, d.deltaRelError() < 0 ? better : worse);
        }
    }
    auto side = [](const RunView& r) {
        QString s = r.id + QStringLiteral(" (") + r.kind + QLatin1Char(')');
        if (r.totalBpw >= 0) s += tr(", %1 bits/weight").arg(r.totalBpw, 0, 'g', 4);
        if (r.klMean >= 0) s += tr(", KL %1 nats (%2)").arg(r.klMean, 0, 'g', 4).arg(r.protocol.describe());
        return s;
    };
    summary_->setText(tr("A: %1\nB: %2").arg(side(a), side(b)));
    const QString warning = klComparabilityWarning(a, b);
    protocolWarning_->setText(warning);
    protocolWarning_->setVisible(!warning.isEmpty());
    return true;
}

QString ResultsPanel::summaryText() const { return summary_->text(); }
QString ResultsPanel::protocolWarning() const { return protocolWarning_->isHidden() ? QString() : protocolWarning_->text(); }

void ResultsPanel::setHeader(QWidget* w) { static_cast<QVBoxLayout*>(layout())->insertWidget(0, w); }

}  // namespace quench::gui
