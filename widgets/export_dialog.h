#pragma once
// The export dialog: packed (the codecs' own codes, docs/packed-format.md), HF (dequantized FP16/BF16) or
// GGUF (llama.cpp types nearest to each layer's codec, or one type), where to write, and the size the
// file will have, estimated before anything is written.
//
// The target is checked while the dialog is open, as the user types or switches format: GGUF is one file
// (its path gets .gguf), packed and HF are directories; an existing target, a missing parent folder or a
// directory the exporter would refuse to replace is named under the path and Export stays disabled (an
// existing target until "replace" is checked), so nothing is refused only after the dialog has closed.
#include <QDialog>

#include "workbench_session.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QToolButton;

namespace quench::gui {

class ExportDialog : public QDialog {
    Q_OBJECT

public:
    ExportDialog(const WorkbenchSession* session, QWidget* parent = nullptr);

    ExportRequest request() const;
    void setFormat(ExportFormat format);
    void setPath(const QString& path);  // as a browse result: a GGUF path gets its .gguf at once
    void setReplace(bool replace);
    QString estimateText() const;
    double estimatedBytes() const { return estimate_; }
    QString problemText() const;  // what is wrong with the target (empty when it is fine); shown under the path

    QLineEdit* pathEdit() const { return path_; }
    QToolButton* browseButton() const { return browse_; }
    QPushButton* exportButton() const { return ok_; }
    QCheckBox* replaceBox() const { return replace_; }

    void accept() override;  // refuses (stays open) while the target has a problem

private:
    void updateEstimate();
    void onFormatChanged();
    void completeSuffix();  // GGUF: "out" -> "out.gguf", in the box, before anything is written
    void validate();
    // The target's problem, or a note; *blocking: Export must stay disabled.
    QString checkTarget(bool* blocking) const;
    void browse();
    ExportFormat format() const;

    const WorkbenchSession* session_;
    QComboBox* format_;
    QLabel* pathLabel_;
    QLineEdit* path_;
    QToolButton* browse_;
    QCheckBox* replace_;
    QCheckBox* bf16_;
    QComboBox* ggufType_;
    QLabel* problem_;
    QLabel* estimateLabel_;
    QLabel* note_;
    QPushButton* ok_;
    QString beforeSuffix_;  // the text before .gguf was added, restored when leaving GGUF
    bool blocked_ = true;
    double estimate_ = 0;
};

}  // namespace quench::gui
