#pragma once
// The Data panel: calibration and evaluation text files, how many of their tokens are used, their token
// counts (counted by a job with the model's tokenizer) and the context length. Edits go straight into the
// session's DataSettings, which every later job copies when it is queued.
#include <QWidget>

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace quench::gui {

class WorkbenchSession;

class DataPanel : public QWidget {
    Q_OBJECT

public:
    explicit DataPanel(WorkbenchSession* session, QWidget* parent = nullptr);

    void setCalibPath(const QString& path);
    void setEvalPath(const QString& path);
    void setCalibTokens(qint64 n);
    void setEvalTokens(qint64 n);
    void setContext(qint64 ctx);
    void setCalibOnQuantized(bool on);
    QString calibCountText() const;
    QString evalCountText() const;
    QPushButton* countButton() const { return countButton_; }

signals:
    void countRequested();

private:
    void sync();         // widgets -> session
    void showCounts();   // session counts -> labels

    WorkbenchSession* session_;
    QLineEdit* calib_;
    QLineEdit* eval_;
    QSpinBox* calibTokens_;
    QSpinBox* evalTokens_;
    QSpinBox* context_;
    QComboBox* calibInputs_;
    QLabel* calibCount_;
    QLabel* evalCount_;
    QLabel* contextNote_;
    QPushButton* countButton_;
};

}  // namespace quench::gui
