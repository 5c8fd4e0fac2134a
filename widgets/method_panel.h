#pragma once
// The Method panel: a codec and its options as a form generated from the codec's parameter schema
// (core/quant/codec_registry.h, as OBS builds property views from obs_properties), the same setting as
// editable spec text that validates as you type, the resulting bits per weight on the selected layers,
// the sensitivity candidates (validated as typed, kept across codec switches and restarts), and the QAT
// section; laid out compactly enough that Train shows without scrolling the dock at 1280 x 800.
#include <QStringList>
#include <QWidget>

#include <functional>
#include <vector>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QGridLayout;
class QGroupBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace quench::gui {

class WorkbenchSession;
struct QatRequest;

class MethodPanel : public QWidget {
    Q_OBJECT

public:
    explicit MethodPanel(WorkbenchSession* session, QWidget* parent = nullptr);

    // The current spec in canonical form; empty while the text does not parse.
    QString spec() const { return spec_; }
    bool isValid() const { return !spec_.isEmpty(); }
    QString validationMessage() const;
    // Sets the spec text as if typed (form follows when it parses).
    void setSpecText(const QString& text);
    QLineEdit* specEdit() const { return specEdit_; }
    QString bitsText() const;
    double bitsPerWeight() const { return bits_; }  // NaN when unknown
    // After QAT of the setting (the codec's trained parts); equal to bitsPerWeight() without a QAT form.
    double bitsAfterQat() const { return bitsAfterQat_; }
    QStringList candidates() const;                 // sensitivity candidates, canonical or as typed
    // Sets the candidates field (not remembered: only what the user types is kept across restarts).
    void setCandidates(const QStringList& specs);
    QLineEdit* candidatesEdit() const { return candidatesEdit_; }
    // Core's message for the candidates as typed; empty when every one parses (Measure is enabled then).
    QString candidatesError() const { return candidatesError_; }
    // Layers the bits estimate is computed for (the model panel's selection).
    void setLayersProvider(std::function<std::vector<std::size_t>()> provider) { layers_ = std::move(provider); }
    void refreshBits();

    QPushButton* quantizeButton() const { return quantizeButton_; }
    QPushButton* sensitivityButton() const { return sensitivityButton_; }
    QPushButton* qatButton() const { return qatButton_; }
    QPushButton* qatResumeButton() const { return qatResumeButton_; }
    QLineEdit* qatCheckpointEdit() const { return qatCheckpoint_; }
    QatRequest qatRequest() const;  // resume = false; the window sets it for Resume
    void setQatRequest(const QatRequest& request);  // fills the QAT fields (resume is not a field)

signals:
    void specChanged(const QString& spec);
    void quantizeRequested();
    void sensitivityRequested();
    void qatRequested();
    void qatResumeRequested();

private:
    void buildForm(const QString& codec);
    void formEdited();  // a form field changed: rebuild the text
    void textEdited();  // the text changed: validate, then move the form to it
    void loadFormFrom(const QString& canonical);
    void showExamples(const QString& codec);  // the codec's example settings as the candidates
    void checkCandidates();
    QGroupBox* buildQatSection();

    WorkbenchSession* session_;
    QComboBox* codecCombo_;
    QGridLayout* form_;  // the codec's options, two to a row
    QWidget* formHost_;
    std::vector<QWidget*> fields_;  // one per schema parameter, in schema order
    QLineEdit* specEdit_;
    QLabel* message_;
    QLabel* bits_label_;
    QLineEdit* candidatesEdit_;
    QLabel* candidatesMessage_;
    QString examplesText_;  // the examples last filled in: a codec switch replaces only these
    QString candidatesError_;
    QPushButton* quantizeButton_;
    QPushButton* sensitivityButton_;
    QComboBox* qatMode_;
    QLineEdit* qatTokens_;
    QDoubleSpinBox* qatLr_;
    QDoubleSpinBox* qatScaleLr_;
    QLineEdit* qatCheckpoint_;
    QPushButton* qatButton_;
    QPushButton* qatResumeButton_;
    QString spec_, message_text_;
    double bits_ = 0, bitsAfterQat_ = 0;
    bool syncing_ = false;
    std::function<std::vector<std::size_t>()> layers_;
};

}  // namespace quench::gui
