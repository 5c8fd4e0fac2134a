#include "export_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QToolButton>

#include <algorithm>

#include "io/gguf_export.h"
#include "io/model_files.h"

namespace quench::gui {

namespace {
const QString kGguf = QStringLiteral(".gguf");
}  // namespace

ExportDialog::ExportDialog(const WorkbenchSession* session, QWidget* parent) : QDialog(parent), session_(session) {
    setWindowTitle(tr("Export model"));
    format_ = new QComboBox(this);
    format_->addItem(tr("Packed Quench checkpoint"), int(ExportFormat::Packed));
    format_->addItem(tr("Hugging Face (dequantized)"), int(ExportFormat::Hf));
    format_->addItem(tr("GGUF (llama.cpp)"), int(ExportFormat::Gguf));
    format_->setItemData(0, tr("A directory: the codecs' own codes and scales in model.safetensors; quench loads it back"), Qt::ToolTipRole);
    format_->setItemData(1, tr("A directory: every weight as it is now (quantized layers dequantized) in FP16 or BF16"), Qt::ToolTipRole);
    format_->setItemData(2, tr("One .gguf file; each quantized layer re-encoded in the ggml type nearest its bits"), Qt::ToolTipRole);
    pathLabel_ = new QLabel(this);
    path_ = new QLineEdit(this);
    browse_ = new QToolButton(this);
    connect(browse_, &QToolButton::clicked, this, &ExportDialog::browse);
    auto* pathRow = new QHBoxLayout;
    pathRow->addWidget(path_, 1);
    pathRow->addWidget(browse_);
    problem_ = new QLabel(this);
    problem_->setWordWrap(true);
    problem_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    replace_ = new QCheckBox(tr("Replace an earlier export there"), this);
    replace_->setToolTip(tr("Only an earlier export is ever replaced: a directory holding nothing but exported files, "
                            "or a .gguf file"));
    bf16_ = new QCheckBox(tr("BF16 instead of FP16"), this);
    ggufType_ = new QComboBox(this);
    ggufType_->addItem(tr("nearest to each layer's codec"), QString());
    for (const quench::GgmlType t : quench::gguf_export_types())  // core's list, as the CLI's --type takes it
        ggufType_->addItem(QString::fromLatin1(quench::ggml_type_name(t)), QString::fromLatin1(quench::ggml_type_name(t)));
    estimateLabel_ = new QLabel(this);
    estimateLabel_->setToolTip(tr("Tensor data the file will hold, estimated from the layers' bits before writing "
                                  "(headers and config files add a little)"));
    note_ = new QLabel(this);
    note_->setWordWrap(true);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    ok_ = buttons->button(QDialogButtonBox::Ok);
    ok_->setText(tr("Export"));
    connect(buttons, &QDialogButtonBox::accepted, this, &ExportDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

    auto* form = new QFormLayout(this);
    form->addRow(tr("Format"), format_);
    form->addRow(pathLabel_, pathRow);
    form->addRow(problem_);
    form->addRow(replace_);
    form->addRow(bf16_);
    form->addRow(tr("GGUF type"), ggufType_);
    form->addRow(tr("Estimated size"), estimateLabel_);
    form->addRow(note_);
    form->addRow(buttons);

    connect(format_, &QComboBox::currentIndexChanged, this, &ExportDialog::onFormatChanged);
    connect(bf16_, &QCheckBox::toggled, this, &ExportDialog::updateEstimate);
    connect(ggufType_, &QComboBox::currentIndexChanged, this, &ExportDialog::updateEstimate);
    connect(path_, &QLineEdit::textChanged, this, &ExportDialog::validate);
    // Not while typing ("out.gg" is on its way to ".gguf"): when the user leaves the box or presses Enter.
    connect(path_, &QLineEdit::editingFinished, this, &ExportDialog::completeSuffix);
    connect(replace_, &QCheckBox::toggled, this, &ExportDialog::validate);
    onFormatChanged();
}

ExportFormat ExportDialog::format() const { return ExportFormat(format_->currentData().toInt()); }

ExportRequest ExportDialog::request() const {
    ExportRequest r;
    r.format = format();
    r.path = path_->text().trimmed();
    r.replace = replace_->isChecked();
    r.bf16 = bf16_->isChecked();
    r.ggufType = ggufType_->currentData().toString();
    return r;
}

void ExportDialog::setFormat(ExportFormat format) { format_->setCurrentIndex(format_->findData(int(format))); }
void ExportDialog::setPath(const QString& path) {
    path_->setText(path);
    completeSuffix();
}
void ExportDialog::setReplace(bool replace) { replace_->setChecked(replace); }
QString ExportDialog::estimateText() const { return estimateLabel_->text(); }
QString ExportDialog::problemText() const { return problem_->text(); }

void ExportDialog::onFormatChanged() {
    const bool gguf = format() == ExportFormat::Gguf;
    pathLabel_->setText(gguf ? tr("Output file") : tr("Output directory"));
    path_->setPlaceholderText(gguf ? tr("output file, e.g. model.gguf (one file)")
                                   : tr("output directory (created; the export writes several files into it)"));
    browse_->setText(gguf ? tr("File...") : tr("Directory..."));
    browse_->setToolTip(gguf ? tr("Choose the .gguf file to write") : tr("Choose the directory to write"));
    // Leaving GGUF takes back the .gguf this dialog added; entering it adds one.
    if (!gguf && !beforeSuffix_.isEmpty() && path_->text().trimmed() == beforeSuffix_ + kGguf) path_->setText(beforeSuffix_);
    beforeSuffix_.clear();
    completeSuffix();
    updateEstimate();
    validate();
}

void ExportDialog::completeSuffix() {
    const QString text = path_->text().trimmed();
    if (format() != ExportFormat::Gguf || text.isEmpty() || text.endsWith(kGguf, Qt::CaseInsensitive)) return;
    // A path naming a directory stays as typed: the problem line says a GGUF export needs a file name.
    if (text.endsWith(QLatin1Char('/')) || QFileInfo(text).isDir()) return;
    beforeSuffix_ = text;
    path_->setText(text + kGguf);
}

QString ExportDialog::checkTarget(bool* blocking) const {
    *blocking = true;
    const QString text = path_->text().trimmed();
    const bool gguf = format() == ExportFormat::Gguf;
    if (text.isEmpty())
        return gguf ? tr("Choose the .gguf file to write.") : tr("Choose the directory to write (it is created).");
    const QString path = QDir::cleanPath(text);  // "out/" names the directory "out"
    const QFileInfo target(path);
    if (gguf && (target.isDir() || text.endsWith(QLatin1Char('/'))))
        return tr("%1 is a directory: a GGUF export is one file. Name the file, e.g. %1/model.gguf.").arg(path);
    if (!gguf && target.exists() && !target.isDir())
        return tr("%1 is a file: a packed or HF export is a directory of files.").arg(path);
    const QFileInfo parent(target.absolutePath());
    if (!parent.isDir()) return tr("The folder %1 does not exist.").arg(parent.filePath());
    if (!gguf && session_->hasModel() && target.exists() &&
        QFileInfo(session_->modelDir()).canonicalFilePath() == target.canonicalFilePath())
        return tr("%1 is the source model's directory: export to another one.").arg(path);
    if (target.exists()) {
        if (!replace_->isChecked())
            return tr("%1 already exists. Check \"Replace\" to overwrite it, or choose another name.").arg(path);
        // The exporter replaces only a directory of exported files; say so now, not after the dialog closed.
        if (!gguf) {
            const auto& allowed = quench::exported_file_names();
            const QFileInfoList entries =
                QDir(path).entryInfoList(QDir::AllEntries | QDir::Hidden | QDir::System | QDir::NoDotAndDotDot);
            for (const QFileInfo& e : entries)
                if (!e.isFile() || std::find(allowed.begin(), allowed.end(), e.fileName().toStdString()) == allowed.end())
                    return tr("%1 holds \"%2\", which is not an exported model file: it is never replaced. Choose "
                              "another directory.").arg(path, e.fileName());
        }
        *blocking = false;
        return tr("%1 will be replaced.").arg(path);
    }
    *blocking = false;
    return {};
}

void ExportDialog::validate() {
    const QString text = checkTarget(&blocked_);
    problem_->setText(text);
    problem_->setVisible(!text.isEmpty());
    // A fixed red reads on the light and the dark palette; a note (replacing) keeps the text colour.
    problem_->setStyleSheet(blocked_ && !path_->text().trimmed().isEmpty() ? QStringLiteral("color: #d32f2f;") : QString());
    ok_->setEnabled(!blocked_);
    ok_->setToolTip(blocked_ ? text : QString());
}

void ExportDialog::accept() {
    completeSuffix();
    validate();
    if (blocked_) return;  // the problem is on show; Export is disabled
    QDialog::accept();
}

void ExportDialog::browse() {
    const QString path =
        format() == ExportFormat::Gguf
            ? QFileDialog::getSaveFileName(this, tr("Export GGUF file"), path_->text(), tr("GGUF (*.gguf)"), nullptr,
                                           QFileDialog::DontConfirmOverwrite)
            : QFileDialog::getSaveFileName(this, tr("Export directory (created)"), path_->text(), QString(), nullptr,
                                           QFileDialog::DontConfirmOverwrite);
    if (!path.isEmpty()) setPath(path);  // an existing target is flagged under the path, not in a second dialog
}

void ExportDialog::updateEstimate() {
    const auto r = request();
    bf16_->setEnabled(r.format == ExportFormat::Hf);
    ggufType_->setEnabled(r.format == ExportFormat::Gguf);
    try {
        estimate_ = session_->estimateExportBytes(r);
        estimateLabel_->setText(QLocale().formattedDataSize(qint64(estimate_), 2, QLocale::DataSizeIecFormat));
    } catch (const std::exception& e) {
        estimate_ = 0;
        estimateLabel_->setText(QString::fromUtf8(e.what()));
    }
    const bool quantized = !session_->layerOutcomes().empty();
    note_->setText(r.format == ExportFormat::Packed && !quantized
                       ? tr("No layer is quantized yet: a packed export copies every tensor as stored.")
                       : QString());
}

}  // namespace quench::gui
