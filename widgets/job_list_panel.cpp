#include "job_list_panel.h"

#include <QHeaderView>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <cmath>

#include "job_queue.h"
#include "job_runner.h"

namespace quench::gui {

namespace {
QString etaText(double seconds) {
    if (seconds < 0) return QStringLiteral("-");
    if (seconds < 60) return QObject::tr("%1 s").arg(std::ceil(seconds));
    return QObject::tr("%1 min %2 s").arg(int(seconds) / 60).arg(int(seconds) % 60);
}
}  // namespace

JobListPanel::JobListPanel(JobQueue* queue, QWidget* parent) : QWidget(parent), queue_(queue) {
    list_ = new QTreeWidget(this);
    list_->setColumnCount(ColumnCount);
    list_->setHeaderLabels({tr("Job"), tr("State"), tr("Progress"), tr("ETA"), QString()});
    list_->headerItem()->setToolTip(EtaCol, tr("Time left, extrapolated from the time so far and the fraction done"));
    list_->setRootIsDecorated(false);
    list_->header()->setSectionResizeMode(NameCol, QHeaderView::Stretch);
    list_->header()->setStretchLastSection(false);
    list_->header()->setSectionResizeMode(StateCol, QHeaderView::ResizeToContents);
    list_->setColumnWidth(ProgressCol, 160);
    log_ = new QPlainTextEdit(this);
    log_->setReadOnly(true);
    log_->setMaximumBlockCount(5000);
    log_->setPlaceholderText(tr("The selected job's log"));
    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(list_);
    split->addWidget(log_);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(split);

    connect(queue_, &JobQueue::jobAdded, this, &JobListPanel::addJob);
    connect(list_, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* item) {
        for (const auto& [job, row] : rows_)
            if (row == item) showLog(job);
    });
    for (auto* job : queue_->jobs()) addJob(job);
}

void JobListPanel::addJob(JobRunner* job) {
    auto* item = new QTreeWidgetItem(list_);
    item->setText(NameCol, job->name());
    item->setToolTip(NameCol, job->name());
    rows_[job] = item;
    auto* bar = new QProgressBar(list_);
    bar->setRange(0, 1000);
    bar->setTextVisible(true);
    list_->setItemWidget(item, ProgressCol, bar);
    auto* cancel = new QPushButton(tr("Cancel"), list_);
    cancel->setToolTip(tr("Stop this job at its next check point; its partial results are discarded"));
    connect(cancel, &QPushButton::clicked, job, &JobRunner::cancel);
    list_->setItemWidget(item, CancelCol, cancel);
    connect(job, &JobRunner::progressed, this, [this, job] { updateRow(job); });
    connect(job, &JobRunner::ended, this, [this, job] { updateRow(job); });
    connect(job, &JobRunner::logged, this, [this, job](const QString& line) {
        if (shown_ == job) log_->appendPlainText(line);
    });
    // Follow the newest job unless the user is reading another one's log.
    if (!shown_ || !shown_->isActive()) {
        list_->setCurrentItem(item);
        showLog(job);
    }
    updateRow(job);
}

void JobListPanel::updateRow(JobRunner* job) {
    auto it = rows_.find(job);
    if (it == rows_.end()) return;
    QTreeWidgetItem* item = it->second;
    // While running, the state column also names the stage (the bar stays short enough to read).
    const bool running = job->state() == JobRunner::State::Running;
    item->setText(StateCol, running && !job->stage().isEmpty() ? stateName(int(job->state())) + QStringLiteral(": ") + job->stage()
                                                               : stateName(int(job->state())));
    item->setToolTip(StateCol, job->state() == JobRunner::State::Failed ? job->errorMessage() : job->stage());
    if (auto* bar = qobject_cast<QProgressBar*>(list_->itemWidget(item, ProgressCol))) {
        bar->setValue(int(std::lround(job->fraction() * 1000)));
        bar->setFormat(QStringLiteral("%p%"));
    }
    item->setText(EtaCol, etaText(job->etaSeconds()));
    if (auto* cancel = list_->itemWidget(item, CancelCol)) cancel->setEnabled(job->isActive());
}

void JobListPanel::showLog(JobRunner* job) {
    shown_ = job;
    log_->setPlainText(job->log());
}

int JobListPanel::rowCount() const { return list_->topLevelItemCount(); }

QString JobListPanel::stateText(int row) const { return list_->topLevelItem(row)->text(StateCol).section(QLatin1Char(':'), 0, 0); }

int JobListPanel::progressPercent(int row) const {
    auto* bar = qobject_cast<QProgressBar*>(list_->itemWidget(list_->topLevelItem(row), ProgressCol));
    return bar ? bar->value() / 10 : -1;
}

void JobListPanel::cancelRow(int row) {
    if (auto* b = qobject_cast<QPushButton*>(list_->itemWidget(list_->topLevelItem(row), CancelCol))) b->click();
}

QString JobListPanel::stateName(int state) {
    switch (JobRunner::State(state)) {
    case JobRunner::State::Queued: return tr("queued");
    case JobRunner::State::Running: return tr("running");
    case JobRunner::State::Finished: return tr("finished");
    case JobRunner::State::Failed: return tr("failed");
    case JobRunner::State::Cancelled: return tr("cancelled");
    }
    return {};
}

}  // namespace quench::gui
