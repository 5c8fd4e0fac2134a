#include "data_panel.h"

#include <QFileDialog>
#include <QComboBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QToolButton>

#include "app_settings.h"
#include "workbench_session.h"

namespace quench::gui {

namespace {

QWidget* fileRow(QWidget* parent, QLineEdit* edit, const QString& title) {
    auto* row = new QWidget(parent);
    auto* l = new QHBoxLayout(row);
    l->setContentsMargins(0, 0, 0, 0);
    auto* browse = new QToolButton(row);
    browse->setText(QStringLiteral("..."));
    browse->setToolTip(title);
    QObject::connect(browse, &QToolButton::clicked, edit, [edit, title] {
        const QString path = QFileDialog::getOpenFileName(edit, title, edit->text(), QObject::tr("Text (*.txt *.raw);;All files (*)"));
        if (!path.isEmpty()) {
            edit->setText(path);
            emit edit->editingFinished();
        }
    });
    l->addWidget(edit, 1);
    l->addWidget(browse);
    return row;
}

QSpinBox* tokenBox(QWidget* parent, int value, const QString& tip) {
    auto* box = new QSpinBox(parent);
    box->setRange(0, 1 << 30);
    box->setSingleStep(1024);
    box->setValue(value);
    box->setSpecialValueText(QObject::tr("all"));
    box->setToolTip(tip);
    return box;
}

}  // namespace

DataPanel::DataPanel(WorkbenchSession* session, QWidget* parent) : QWidget(parent), session_(session) {
    const auto& d = session_->data();
    calib_ = new QLineEdit(AppSettings::value(AppSettings::calibKey(), d.calibPath), this);
    calib_->setPlaceholderText(tr("calibration text (UTF-8)"));
    calib_->setToolTip(tr("Text the model runs on while quantizing: GPTQ Hessians, activation scales, the output "
                          "error, and sensitivity's capture pass"));
    eval_ = new QLineEdit(AppSettings::value(AppSettings::evalKey(), d.evalPath), this);
    eval_->setPlaceholderText(tr("held-out evaluation text (UTF-8)"));
    eval_->setToolTip(tr("Held-out text for KL divergence and perplexity against the full-precision model"));
    calibTokens_ = tokenBox(this, int(d.calibTokens), tr("Calibration tokens used (0 = all)"));
    evalTokens_ = tokenBox(this, int(d.evalTokens), tr("Evaluation tokens used for KL and perplexity (0 = all)"));
    context_ = new QSpinBox(this);
    context_->setRange(0, 1 << 20);
    context_->setSingleStep(64);
    context_->setValue(int(d.context));
    context_->setSpecialValueText(tr("auto"));
    context_->setToolTip(tr("Window length in tokens for calibration and evaluation (auto: the model's maximum "
                            "positions, at most 512)"));
    calibInputs_ = new QComboBox(this);
    calibInputs_->addItem(tr("quantized blocks before (GPTQ order)"), true);
    calibInputs_->addItem(tr("full-precision model"), false);
    calibInputs_->setCurrentIndex(d.calibOnQuantized ? 0 : 1);
    calibInputs_->setToolTip(tr("What a block's layers are calibrated on when quantizing: the outputs of the "
                                "already-quantized blocks before it, so each layer corrects the error before it "
                                "(default), or the full-precision model's (quench-cli --calib-inputs fp)"));
    calibCount_ = new QLabel(QStringLiteral("-"), this);
    evalCount_ = new QLabel(QStringLiteral("-"), this);
    contextNote_ = new QLabel(this);
    countButton_ = new QPushButton(tr("Count tokens"), this);
    countButton_->setToolTip(tr("Tokenize both files with the model's tokenizer (runs as a job)"));

    auto* form = new QFormLayout(this);
    form->addRow(tr("Calibration"), fileRow(this, calib_, tr("Choose calibration text")));
    form->addRow(tr("  tokens used"), calibTokens_);
    form->addRow(tr("  tokens in file"), calibCount_);
    form->addRow(tr("  inputs"), calibInputs_);
    form->addRow(tr("Evaluation"), fileRow(this, eval_, tr("Choose evaluation text")));
    form->addRow(tr("  tokens used"), evalTokens_);
    form->addRow(tr("  tokens in file"), evalCount_);
    form->addRow(tr("Context length"), context_);
    form->addRow(contextNote_);
    form->addRow(countButton_);

    connect(calib_, &QLineEdit::editingFinished, this, &DataPanel::sync);
    connect(eval_, &QLineEdit::editingFinished, this, &DataPanel::sync);
    connect(calibTokens_, &QSpinBox::valueChanged, this, &DataPanel::sync);
    connect(evalTokens_, &QSpinBox::valueChanged, this, &DataPanel::sync);
    connect(context_, &QSpinBox::valueChanged, this, &DataPanel::sync);
    connect(calibInputs_, &QComboBox::currentIndexChanged, this, &DataPanel::sync);
    connect(countButton_, &QPushButton::clicked, this, &DataPanel::countRequested);
    connect(session_, &WorkbenchSession::tokensCounted, this, &DataPanel::showCounts);
    connect(session_, &WorkbenchSession::modelLoaded, this, [this] {
        contextNote_->setText(tr("model maximum: %1 positions").arg(session_->maxPositions()));
        showCounts();
    });
    sync();
}

void DataPanel::sync() {
    auto& d = session_->data();
    const bool filesChanged = d.calibPath != calib_->text() || d.evalPath != eval_->text();
    d.calibPath = calib_->text().trimmed();
    d.evalPath = eval_->text().trimmed();
    d.calibTokens = calibTokens_->value();
    d.evalTokens = evalTokens_->value();
    d.context = context_->value();
    d.calibOnQuantized = calibInputs_->currentData().toBool();
    AppSettings::setValue(AppSettings::calibKey(), d.calibPath);
    AppSettings::setValue(AppSettings::evalKey(), d.evalPath);
    if (filesChanged) {
        calibCount_->setText(QStringLiteral("-"));
        evalCount_->setText(QStringLiteral("-"));
    }
}

void DataPanel::showCounts() {
    auto text = [](qint64 n) { return n < 0 ? QStringLiteral("-") : QString::number(n); };
    calibCount_->setText(text(session_->calibTokenCount()));
    evalCount_->setText(text(session_->evalTokenCount()));
}

void DataPanel::setCalibPath(const QString& path) {
    calib_->setText(path);
    sync();
}
void DataPanel::setEvalPath(const QString& path) {
    eval_->setText(path);
    sync();
}
void DataPanel::setCalibTokens(qint64 n) { calibTokens_->setValue(int(n)); }
void DataPanel::setEvalTokens(qint64 n) { evalTokens_->setValue(int(n)); }
void DataPanel::setContext(qint64 ctx) { context_->setValue(int(ctx)); }
void DataPanel::setCalibOnQuantized(bool on) { calibInputs_->setCurrentIndex(on ? 0 : 1); }
QString DataPanel::calibCountText() const { return calibCount_->text(); }
QString DataPanel::evalCountText() const { return evalCount_->text(); }

}  // namespace quench::gui
