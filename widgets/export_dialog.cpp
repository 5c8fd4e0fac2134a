#include "export_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QToolButton>

namespace quench::gui {

ExportDialog::ExportDialog(const WorkbenchSession* session, QWidget* parent) : QDialog(parent), session_(session) {
    setWindowTitle(tr("Export model"));
    format_ = new QComboBox(this);
    format_->addItem(tr("Packed Quench checkpoint"), int(ExportFormat::Packed));
    format_->addItem(tr("Hugging Face (dequantized)"), int(ExportFormat::Hf));
    format_->addItem(tr("GGUF (llama.cpp)"), int(ExportFormat::Gguf));
    format_->setItemData(0, tr("The codecs' own codes and scales in model.safetensors; quench loads it back"), Qt::ToolTipRole);
    format_->setItemData(1, tr("Every weight as it is now (quantized layers dequantized) in FP16 or BF16"), Qt::ToolTipRole);
    format_->setItemData(2, tr("One .gguf file; each quantized layer re-encoded in the ggml type nearest its bits"), Qt::ToolTipRole);
    path_ = new QLineEdit(this);
    path_->setPlaceholderText(tr("output directory (packed, HF) or .gguf file"));
    auto* browse = new QToolButton(this);
    browse->setText(QStringLiteral("..."));
    connect(browse, &QToolButton::clicked, this, &ExportDialog::browse);
    auto* pathRow = new QHBoxLayout;
    pathRow->addWidget(path_, 1);
    pathRow->addWidget(browse);
    replace_ = new QCheckBox(tr("Replace an earlier export there"), this);
    replace_->setToolTip(tr("Only a directory holding nothing but exported files is ever replaced"));
    bf16_ = new QCheckBox(tr("BF16 instead of FP16"), this);
    ggufType_ = new QComboBox(this);
    ggufType_->addItem(tr("nearest to each layer's codec"), QString());
    for (const char* t : {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_0", "F16", "F32"})
        ggufType_->addItem(QString::fromLatin1(t), QString::fromLatin1(t));
    estimateLabel_ = new QLabel(this);
    estimateLabel_->setToolTip(tr("Tensor data the file will hold, estimated from the layers' bits before writing "
                                  "(headers and config files add a little)"));
    note_ = new QLabel(this);
    note_->setWordWrap(true);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Export"));
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

    auto* form = new QFormLayout(this);
    form->addRow(tr("Format"), format_);
    form->addRow(tr("Write to"), pathRow);
    form->addRow(replace_);
    form->addRow(bf16_);
    form->addRow(tr("GGUF type"), ggufType_);
    form->addRow(tr("Estimated size"), estimateLabel_);
    form->addRow(note_);
    form->addRow(buttons);

    connect(format_, &QComboBox::currentIndexChanged, this, &ExportDialog::updateEstimate);
    connect(bf16_, &QCheckBox::toggled, this, &ExportDialog::updateEstimate);
    connect(ggufType_, &QComboBox::currentIndexChanged, this, &ExportDialog::updateEstimate);
    updateEstimate();
}

ExportRequest ExportDialog::request() const {
    ExportRequest r;
    r.format = ExportFormat(format_->currentData().toInt());
    r.path = path_->text().trimmed();
    r.replace = replace_->isChecked();
    r.bf16 = bf16_->isChecked();
    r.ggufType = ggufType_->currentData().toString();
    return r;
}

void ExportDialog::setFormat(ExportFormat format) { format_->setCurrentIndex(format_->findData(int(format))); }
void ExportDialog::setPath(const QString& path) { path_->setText(path); }
void ExportDialog::setReplace(bool replace) { replace_->setChecked(replace); }
QString ExportDialog::estimateText() const { return estimateLabel_->text(); }

void ExportDialog::browse() {
    const auto format = ExportFormat(format_->currentData().toInt());
    const QString path = format == ExportFormat::Gguf
                             ? QFileDialog::getSaveFileName(this, tr("Export GGUF"), path_->text(), tr("GGUF (*.gguf)"))
                             : QFileDialog::getSaveFileName(this, tr("Export directory"), path_->text());
    if (!path.isEmpty()) path_->setText(path);
}

void ExportDialog::updateEstimate() {
    const auto r = request();
    bf16_->setEnabled(r.format == ExportFormat::Hf);
    ggufType_->setEnabled(r.format == ExportFormat::Gguf);
    try {
        estimate_ = session_->estimateExportBytes(r);
        estimateLabel_->setText(QLocale().formattedDataSize(qint64(estimate_), 2, QLocale::DataSizeSIFormat));
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
