#pragma once
// The export dialog: packed (the codecs' own codes, docs/packed-format.md), HF (dequantized FP16/BF16) or
// GGUF (llama.cpp types nearest to each layer's codec, or one type), where to write, and the size the
// file will have, estimated before anything is written.
#include <QDialog>

#include "workbench_session.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;

namespace quench::gui {

class ExportDialog : public QDialog {
    Q_OBJECT

public:
    ExportDialog(const WorkbenchSession* session, QWidget* parent = nullptr);

    ExportRequest request() const;
    void setFormat(ExportFormat format);
    void setPath(const QString& path);
    void setReplace(bool replace);
    QString estimateText() const;
    double estimatedBytes() const { return estimate_; }

private:
    void updateEstimate();
    void browse();

    const WorkbenchSession* session_;
    QComboBox* format_;
    QLineEdit* path_;
    QCheckBox* replace_;
    QCheckBox* bf16_;
    QComboBox* ggufType_;
    QLabel* estimateLabel_;
    QLabel* note_;
    double estimate_ = 0;
};

}  // namespace quench::gui
