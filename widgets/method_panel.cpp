#include "method_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

#include <cmath>
#include <limits>
#include <utility>

#include "jobs/sensitivity.h"
#include "app_settings.h"
#include "common/error.h"
#include "quant/codec_registry.h"
#include "quant/codec_spec.h"
#include "workbench_session.h"

namespace quench::gui {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }
const char* const kInvalidStyle = "QLineEdit { border: 1px solid #d04040; }";

// The QAT learning rates start at the codec row's (core's QatDefaults for a codec without a QAT form) and
// follow the codec, except where the user changed them: a box still showing the last default takes the new one.
void followQatDefaults(QDoubleSpinBox* lr, QDoubleSpinBox* scaleLr, const QString& codec) {
    const quench::QatDefaults d = quench::qat_defaults(codec.toStdString());
    for (const auto& [box, value] : {std::pair{lr, d.lr}, std::pair{scaleLr, d.scale_lr}}) {
        const QVariant shown = box->property("codecDefault");
        if (!shown.isValid() || std::abs(box->value() - shown.toDouble()) < 0.5 * std::pow(10.0, -box->decimals()))
            box->setValue(value);
        box->setProperty("codecDefault", value);
    }
}
}  // namespace

MethodPanel::MethodPanel(WorkbenchSession* session, QWidget* parent) : QWidget(parent), session_(session) {
    codecCombo_ = new QComboBox(this);
    for (const auto& t : quench::codec_table()) {
        codecCombo_->addItem(QString::fromLatin1(t.name));
        codecCombo_->setItemData(codecCombo_->count() - 1,
                                 QStringLiteral("%1 (%2)").arg(QString::fromUtf8(t.description), QString::fromLatin1(t.family)),
                                 Qt::ToolTipRole);
    }
    formHost_ = new QWidget(this);
    form_ = new QGridLayout(formHost_);
    form_->setContentsMargins(0, 0, 0, 0);
    form_->setColumnStretch(1, 1);
    form_->setColumnStretch(3, 1);
    specEdit_ = new QLineEdit(this);
    specEdit_->setToolTip(tr("The setting as text, as the CLI takes it (--codec). Edit either the form or the text; "
                             "it is checked as you type."));
    message_ = new QLabel(this);
    message_->setWordWrap(true);
    message_->hide();  // only a bad spec has something to say; valid ones show as a plain field
    bits_label_ = new QLabel(this);
    bits_label_->setWordWrap(true);
    bits_label_->setToolTip(tr("Total bits per weight this setting costs on the selected layers (weighted by size): "
                               "codes plus scales, zero points and codebooks. Estimated from the codec's layout, "
                               "without quantizing. With no layer selected, a 4096 x 4096 weight stands in."));
    quantizeButton_ = new QPushButton(tr("&Quantize selected"), this);
    quantizeButton_->setToolTip(tr("Quantize the selected layers with this setting (Ctrl+R); evaluates KL when "
                                   "evaluation text is set"));

    auto* candidatesBox = new QGroupBox(tr("Sensitivity"), this);
    candidatesEdit_ = new QLineEdit(candidatesBox);
    candidatesEdit_->setToolTip(tr("Candidate settings separated by ';'. For each selected layer and candidate, "
                                   "the model KL with only that layer quantized is measured (the allocator's costs). "
                                   "Checked as you type; what you type is kept across codec switches and restarts."));
    candidatesMessage_ = new QLabel(candidatesBox);
    candidatesMessage_->setWordWrap(true);
    candidatesMessage_->hide();
    sensitivityButton_ = new QPushButton(tr("&Measure sensitivity"), candidatesBox);
    auto* cl = new QFormLayout(candidatesBox);
    cl->addRow(tr("Candidates"), candidatesEdit_);
    cl->addRow(candidatesMessage_);
    cl->addRow(sensitivityButton_);

    // Compact so that the whole panel, Train included, fits the Method dock at 1280 x 800 without
    // scrolling: the codec's description is its tooltip, the options sit two to a row, the validation
    // message shows only for a bad spec.
    auto* methodBox = new QGroupBox(tr("Codec"), this);
    auto* ml = new QFormLayout(methodBox);
    ml->addRow(tr("Codec"), codecCombo_);
    ml->addRow(formHost_);
    ml->addRow(tr("Spec"), specEdit_);
    ml->addRow(message_);
    ml->addRow(tr("Bits/weight"), bits_label_);
    ml->addRow(quantizeButton_);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(methodBox);
    layout->addWidget(candidatesBox);
    layout->addWidget(buildQatSection());
    layout->addStretch();

    connect(codecCombo_, &QComboBox::currentTextChanged, this, [this](const QString& codec) {
        followQatDefaults(qatLr_, qatScaleLr_, codec);
        if (syncing_) return;
        buildForm(codec);
        formEdited();
        // The new codec's examples replace the old codec's, never a list the user typed.
        const QString current = candidatesEdit_->text().trimmed();
        if (current.isEmpty() || current == examplesText_) showExamples(codec);
    });
    connect(candidatesEdit_, &QLineEdit::textEdited, this, [this](const QString& text) {
        AppSettings::setValue(AppSettings::candidatesKey(), text.trimmed());
        checkCandidates();
    });
    connect(specEdit_, &QLineEdit::textEdited, this, &MethodPanel::textEdited);
    connect(quantizeButton_, &QPushButton::clicked, this, &MethodPanel::quantizeRequested);
    connect(sensitivityButton_, &QPushButton::clicked, this, &MethodPanel::sensitivityRequested);
    connect(session_, &WorkbenchSession::modelLoaded, this, &MethodPanel::refreshBits);

    buildForm(codecCombo_->currentText());
    formEdited();
    showExamples(codecCombo_->currentText());
    const QString saved = AppSettings::value(AppSettings::candidatesKey());
    if (!saved.isEmpty()) setCandidates({saved});
}

void MethodPanel::showExamples(const QString& codec) {
    QStringList examples;
    if (const auto* t = quench::find_codec(codec.toStdString()))
        for (const auto& e : t->examples()) examples << q(e);
    setCandidates(examples);
    examplesText_ = candidatesEdit_->text().trimmed();
}

void MethodPanel::checkCandidates() {
    // Core's parser, so the message names the bad spec as a sensitivity run would.
    try {
        if (candidates().isEmpty()) throw quench::Error("no candidate settings: list them separated by ';'");
        (void)quench::parse_candidate_list(candidatesEdit_->text().toStdString());
        candidatesError_.clear();
    } catch (const quench::Error& e) {
        candidatesError_ = QString::fromUtf8(e.what());
    }
    candidatesMessage_->setText(candidatesError_);
    candidatesMessage_->setVisible(!candidatesError_.isEmpty());
    candidatesEdit_->setStyleSheet(candidatesError_.isEmpty() ? QString() : QString::fromLatin1(kInvalidStyle));
    sensitivityButton_->setEnabled(candidatesError_.isEmpty());
}

QGroupBox* MethodPanel::buildQatSection() {
    auto* box = new QGroupBox(tr("Quantization-aware training"), this);
    qatMode_ = new QComboBox(box);
    qatMode_->addItem(tr("end-to-end"), QStringLiteral("e2e"));
    qatMode_->addItem(tr("block-wise"), QStringLiteral("block"));
    qatMode_->setToolTip(tr("end-to-end: next-token loss (plus KL to the full-precision model) through the whole "
                            "model; block-wise: each block's quantized layers learn to match its full-precision output"));
    qatTokens_ = new QLineEdit(QStringLiteral("200k"), box);
    qatTokens_->setToolTip(tr("Training tokens: 20000, 200k, 1.5M, or a share of the training text such as 10%@train"));
    qatLr_ = new QDoubleSpinBox(box);
    qatLr_->setDecimals(6);
    qatLr_->setRange(1e-7, 1);
    qatLr_->setSingleStep(1e-5);
    qatLr_->setToolTip(tr("Learning rate of the latent weights (AdamW)"));
    qatScaleLr_ = new QDoubleSpinBox(box);
    qatScaleLr_->setDecimals(6);
    qatScaleLr_->setRange(1e-7, 1);
    qatScaleLr_->setSingleStep(1e-4);
    followQatDefaults(qatLr_, qatScaleLr_, codecCombo_->currentText());
    qatScaleLr_->setToolTip(tr("Learning rate of scales, affine maps and input transforms"));
    qatCheckpoint_ = new QLineEdit(box);
    qatCheckpoint_->setPlaceholderText(tr("checkpoints: none (not resumable)"));
    qatCheckpoint_->setToolTip(tr("Directory where training saves resumable checkpoints (every 50 steps, on cancel "
                                  "and at the end); Resume continues the run saved there"));
    auto* browse = new QToolButton(box);
    browse->setText(tr("..."));
    browse->setToolTip(tr("Choose the checkpoint directory"));
    connect(browse, &QToolButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("QAT checkpoint directory"), qatCheckpoint_->text());
        if (!dir.isEmpty()) qatCheckpoint_->setText(dir);
    });
    auto* checkpointRow = new QHBoxLayout;
    checkpointRow->addWidget(qatCheckpoint_, 1);
    checkpointRow->addWidget(browse);
    qatButton_ = new QPushButton(tr("Train"), box);
    qatButton_->setToolTip(tr("Fine-tune the quantized layers (quantized with %1) on the calibration text; the "
                              "Training tab plots loss and held-out KL")
                               .arg(q(quench::qat_codec_names())));
    connect(qatButton_, &QPushButton::clicked, this, &MethodPanel::qatRequested);
    qatResumeButton_ = new QPushButton(tr("Resume"), box);
    qatResumeButton_->setToolTip(tr("Continue the cancelled run whose checkpoint is in the checkpoint directory, with "
                                    "the same settings and quantized layers; the curves go on from the saved step"));
    connect(qatResumeButton_, &QPushButton::clicked, this, &MethodPanel::qatResumeRequested);
    // Two settings to a row (the tooltips say what each is), so Train stays in view.
    auto* l = new QGridLayout(box);
    l->setColumnStretch(1, 1);
    l->setColumnStretch(3, 1);
    auto label = [box](const QString& text, QWidget* buddy) {
        auto* lab = new QLabel(text, box);
        lab->setBuddy(buddy);
        lab->setToolTip(buddy->toolTip());
        return lab;
    };
    l->addWidget(label(tr("Mode"), qatMode_), 0, 0);
    l->addWidget(qatMode_, 0, 1);
    l->addWidget(label(tr("Tokens"), qatTokens_), 0, 2);
    l->addWidget(qatTokens_, 0, 3);
    l->addWidget(label(tr("LR"), qatLr_), 1, 0);
    l->addWidget(qatLr_, 1, 1);
    l->addWidget(label(tr("Scale LR"), qatScaleLr_), 1, 2);
    l->addWidget(qatScaleLr_, 1, 3);
    l->addLayout(checkpointRow, 2, 0, 1, 4);  // its placeholder names it: a label would widen the first column
    l->addWidget(qatButton_, 3, 0, 1, 2);
    l->addWidget(qatResumeButton_, 3, 2, 1, 2);
    return box;
}

void MethodPanel::buildForm(const QString& codec) {
    fields_.clear();
    while (QLayoutItem* item = form_->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    const auto* traits = quench::find_codec(codec.toStdString());
    if (!traits) return;
    codecCombo_->setToolTip(QString::fromUtf8(traits->description));
    for (const auto& p : traits->params()) {
        QWidget* field = nullptr;
        const QString help = q(p.help);
        if (p.type == quench::ParamType::Flag) {
            auto* box = new QCheckBox(formHost_);
            box->setChecked(p.default_value == "1" || p.default_value == "true");
            connect(box, &QCheckBox::toggled, this, &MethodPanel::formEdited);
            field = box;
        } else if (p.type == quench::ParamType::Choice || !p.choices.empty()) {
            auto* box = new QComboBox(formHost_);
            for (const auto& c : p.choices) box->addItem(q(c));
            box->setCurrentText(q(p.default_value));
            connect(box, &QComboBox::currentTextChanged, this, &MethodPanel::formEdited);
            field = box;
        } else if (p.type == quench::ParamType::Int) {
            auto* box = new QSpinBox(formHost_);
            const bool ranged = p.min != p.max;
            box->setRange(ranged ? int(p.min) : 0, ranged ? int(p.max) : 1 << 30);
            box->setValue(q(p.default_value).toInt());
            connect(box, &QSpinBox::valueChanged, this, &MethodPanel::formEdited);
            field = box;
        } else {
            auto* box = new QDoubleSpinBox(formHost_);
            box->setDecimals(4);
            const bool ranged = p.min != p.max;
            box->setRange(ranged ? p.min : -1e9, ranged ? p.max : 1e9);
            box->setValue(q(p.default_value).toDouble());
            connect(box, &QDoubleSpinBox::valueChanged, this, &MethodPanel::formEdited);
            field = box;
        }
        field->setObjectName(q(p.name));
        field->setToolTip(help);
        // Two options to a row: label, field, label, field.
        const int at = int(fields_.size());
        auto* label = new QLabel(q(p.name), formHost_);
        label->setToolTip(help);
        label->setBuddy(field);
        form_->addWidget(label, at / 2, (at % 2) * 2);
        form_->addWidget(field, at / 2, (at % 2) * 2 + 1);
        fields_.push_back(field);
    }
}

void MethodPanel::formEdited() {
    if (syncing_) return;
    const auto* traits = quench::find_codec(codecCombo_->currentText().toStdString());
    if (!traits) return;
    QStringList parts;
    const auto& params = traits->params();
    for (std::size_t i = 0; i < params.size() && i < fields_.size(); ++i) {
        const QString name = q(params[i].name);
        QString value;
        if (auto* b = qobject_cast<QCheckBox*>(fields_[i])) value = b->isChecked() ? QStringLiteral("1") : QStringLiteral("0");
        else if (auto* c = qobject_cast<QComboBox*>(fields_[i])) value = c->currentText();
        else if (auto* s = qobject_cast<QSpinBox*>(fields_[i])) value = QString::number(s->value());
        else if (auto* d = qobject_cast<QDoubleSpinBox*>(fields_[i])) value = QString::number(d->value(), 'g', 8);
        parts << name + QLatin1Char('=') + value;
    }
    QString text = codecCombo_->currentText();
    if (!parts.isEmpty()) text += QLatin1Char(':') + parts.join(QLatin1Char(','));
    try {
        text = q(quench::CodecSpec::parse(text.toStdString()).to_string());
    } catch (const quench::Error&) {
        // Shown by textEdited below.
    }
    specEdit_->setText(text);
    textEdited();
}

void MethodPanel::setSpecText(const QString& text) {
    specEdit_->setText(text);
    textEdited();
}

void MethodPanel::textEdited() {
    const QString text = specEdit_->text().trimmed();
    try {
        const auto spec = quench::CodecSpec::parse(text.toStdString());
        spec_ = q(spec.to_string());
        message_text_.clear();
        message_->clear();
        message_->hide();
        specEdit_->setStyleSheet({});
        loadFormFrom(spec_);
    } catch (const quench::Error& e) {
        spec_.clear();
        message_text_ = QString::fromUtf8(e.what());
        message_->setText(message_text_);
        message_->show();
        specEdit_->setStyleSheet(QString::fromLatin1(kInvalidStyle));
    }
    quantizeButton_->setEnabled(!spec_.isEmpty());
    refreshBits();
    emit specChanged(spec_);
}

void MethodPanel::loadFormFrom(const QString& canonical) {
    const auto spec = quench::CodecSpec::parse(canonical.toStdString());
    syncing_ = true;
    const QString codec = q(spec.codec());
    if (codecCombo_->currentText() != codec) {
        codecCombo_->setCurrentText(codec);
        buildForm(codec);
    }
    const auto* traits = quench::find_codec(spec.codec());
    const auto& params = traits->params();
    for (std::size_t i = 0; i < params.size() && i < fields_.size(); ++i) {
        const QString v = q(spec.values().at(params[i].name));
        if (auto* b = qobject_cast<QCheckBox*>(fields_[i])) b->setChecked(v == QStringLiteral("1"));
        else if (auto* c = qobject_cast<QComboBox*>(fields_[i])) c->setCurrentText(v);
        else if (auto* s = qobject_cast<QSpinBox*>(fields_[i])) s->setValue(v.toInt());
        else if (auto* d = qobject_cast<QDoubleSpinBox*>(fields_[i])) d->setValue(v.toDouble());
    }
    syncing_ = false;
}

QString MethodPanel::validationMessage() const { return message_text_; }

void MethodPanel::refreshBits() {
    bits_ = bitsAfterQat_ = std::numeric_limits<double>::quiet_NaN();
    if (spec_.isEmpty()) {
        bits_label_->setText(QStringLiteral("-"));
        return;
    }
    const auto layers = layers_ ? layers_() : std::vector<std::size_t>{};
    try {
        bits_ = session_->estimateBitsPerWeight(spec_.toStdString(), layers);
        bitsAfterQat_ = session_->estimateBitsPerWeight(spec_.toStdString(), layers, true);
        QString text = layers.empty() ? tr("%1 on a 4096 x 4096 weight").arg(bits_, 0, 'f', 3)
                                      : tr("%1 on %n selected layer(s)", nullptr, int(layers.size())).arg(bits_, 0, 'f', 3);
        // QAT stores trained parts of its own (input scales, per-layer maps): say what training will cost.
        if (bitsAfterQat_ > bits_ * (1 + 1e-9)) text += tr("; %1 after QAT").arg(bitsAfterQat_, 0, 'f', 3);
        bits_label_->setText(text);
    } catch (const std::exception& e) {
        bits_label_->setText(QString::fromUtf8(e.what()));
    }
}

QatRequest MethodPanel::qatRequest() const {
    QatRequest r;
    r.blockwise = qatMode_->currentData().toString() == QStringLiteral("block");
    r.tokens = qatTokens_->text().trimmed();
    r.lr = qatLr_->value();
    r.scaleLr = qatScaleLr_->value();
    r.checkpointDir = qatCheckpoint_->text().trimmed();
    return r;
}

void MethodPanel::setQatRequest(const QatRequest& r) {
    qatMode_->setCurrentIndex(qatMode_->findData(r.blockwise ? QStringLiteral("block") : QStringLiteral("e2e")));
    qatTokens_->setText(r.tokens);
    qatLr_->setValue(r.lr);
    qatScaleLr_->setValue(r.scaleLr);
    qatCheckpoint_->setText(r.checkpointDir);
}

QString MethodPanel::bitsText() const { return bits_label_->text(); }

QStringList MethodPanel::candidates() const {
    QStringList out;
    for (const QString& s : candidatesEdit_->text().split(QLatin1Char(';'), Qt::SkipEmptyParts))
        if (!s.trimmed().isEmpty()) out << s.trimmed();
    return out;
}

void MethodPanel::setCandidates(const QStringList& specs) {
    candidatesEdit_->setText(specs.join(QStringLiteral("; ")));
    checkCandidates();
}

}  // namespace quench::gui
