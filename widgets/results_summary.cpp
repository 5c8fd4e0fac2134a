#include "results_summary.h"

#include <QGridLayout>
#include <QLabel>
#include <QVBoxLayout>

#include <cmath>
#include <limits>

#include "eval_summary.h"
#include "workbench_session.h"

namespace quench::gui {

namespace {

QLabel* smallLabel(QWidget* parent, const QString& text = {}) {
    auto* l = new QLabel(text, parent);
    l->setTextInteractionFlags(Qt::TextSelectableByMouse);  // numbers get copied into notes
    return l;
}

QLabel* wrapped(QWidget* parent) {
    auto* l = smallLabel(parent);
    l->setWordWrap(true);
    return l;
}

}  // namespace

ResultsSummary::ResultsSummary(WorkbenchSession* session, QWidget* parent) : QWidget(parent), session_(session) {
    title_ = new QLabel(this);
    QFont bold = title_->font();
    bold.setBold(true);
    title_->setFont(bold);
    title_->setWordWrap(true);

    // Short headers: the table must fit the centre area at 1280 x 800 with the default docks.
    table_ = new QWidget(this);
    grid_ = new QGridLayout(table_);
    grid_->setContentsMargins(0, 0, 0, 0);
    grid_->setHorizontalSpacing(12);
    grid_->setVerticalSpacing(2);
    const QString headers[FieldCount] = {tr("Bits/weight"), tr("KL ± s.e."), tr("KL p99"), tr("Top-1"), tr("PPL"), tr("PPL fp")};
    const QString tips[FieldCount] = {
        tr("Total bits per weight over the quantized layers (codes, scales, shared parts)"),
        tr("Mean KL(full precision || quantized) per scored token, nats, with its standard error"),
        tr("99th percentile of the per-token KL, nats: the tail a mean hides"),
        tr("Share of positions where the quantized model's most likely next token is the full-precision model's"),
        tr("Perplexity of the quantized model on the evaluation text"),
        tr("Perplexity of the full-precision model on the same windows")};
    for (int f = 0; f < FieldCount; ++f) {
        auto* h = new QLabel(headers[f], table_);
        h->setToolTip(tips[f]);
        grid_->addWidget(h, 0, f + 1);
    }
    const QString rows[RowCount] = {tr("Latest"), tr("Δ previous"), tr("Uniform, pred.")};
    for (int r = 0; r < RowCount; ++r) {
        rowLabels_[r] = new QLabel(rows[r], table_);
        grid_->addWidget(rowLabels_[r], r + 1, 0);
        for (int f = 0; f < FieldCount; ++f) {
            cells_[r][f] = smallLabel(table_);
            if (r != UniformRow || f <= KlField) grid_->addWidget(cells_[r][f], r + 1, f + 1);
            else cells_[r][f]->hide();  // the uniform row has bits and KL only
        }
    }
    rowLabels_[DeltaRow]->setToolTip(tr("Latest minus the evaluation before it"));
    rowLabels_[UniformRow]->setToolTip(tr("Predicted from the sensitivity measurements (the sum of each layer's measured "
                                          "KL), not measured: one setting on every quantized layer, at no more bits"));
    grid_->setColumnStretch(FieldCount + 1, 1);

    uniformSpec_ = wrapped(this);  // below the table, wrapped: a spec is long
    protocol_ = wrapped(this);
    warning_ = wrapped(this);
    warning_->setStyleSheet(QStringLiteral("QLabel { color: #b8500f; }"));
    note_ = wrapped(this);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 4);
    layout->setSpacing(3);
    layout->addWidget(title_);
    layout->addWidget(table_);
    layout->addWidget(uniformSpec_);
    layout->addWidget(protocol_);
    layout->addWidget(warning_);
    layout->addWidget(note_);

    connect(session_, &WorkbenchSession::evaluated, this, [this] {
        skipped_.clear();
        refresh();
    });
    connect(session_, &WorkbenchSession::klSkipped, this, [this](const QString& why) {
        skipped_ = tr("The latest result (%n layer(s) at %1 b/w) was not evaluated. %2", nullptr,
                      int(session_->layerOutcomes().size()))
                       .arg(session_->totalBitsPerWeight(), 0, 'f', 3)
                       .arg(why);
        refresh();
    });
    connect(session_, &WorkbenchSession::modelLoaded, this, [this] {
        skipped_.clear();
        refresh();
    });
    refresh();
}

bool ResultsSummary::rowShown(Row row) const { return !table_->isHidden() && !rowLabels_[row]->isHidden(); }
QString ResultsSummary::titleText() const { return title_->text(); }
QString ResultsSummary::uniformText() const { return rowShown(UniformRow) ? uniformSpec_->text() : QString(); }
QString ResultsSummary::protocolText() const { return protocol_->isHidden() ? QString() : protocol_->text(); }

QString ResultsSummary::noteText() const {
    QStringList parts;
    for (const QLabel* l : {warning_, note_})
        if (!l->isHidden()) parts << l->text();
    return parts.join(QLatin1Char('\n'));
}

void ResultsSummary::setCell(Row row, Field field, const QString& text, double value) {
    QLabel* c = cells_[row][field];
    c->setText(text);
    c->setProperty("value", value);
}

void ResultsSummary::refresh() {
    const auto& evals = session_->evaluations();
    QStringList notes;
    if (!skipped_.isEmpty()) notes << skipped_;
    if (session_->projectPath().isEmpty())
        notes << tr("Runs are not saved: File > Project File... (Ctrl+Shift+P) records every run for Results and Compare.");
    note_->setText(notes.join(QLatin1Char('\n')));
    note_->setVisible(!notes.isEmpty());
    warning_->hide();
    if (evals.empty()) {
        title_->setText(tr("No evaluation yet: quantize with an evaluation text set (Data panel), or Run > Evaluate KL (Ctrl+K)."));
        table_->hide();
        uniformSpec_->hide();
        protocol_->hide();
        return;
    }
    const EvalSummary& e = evals.back();
    title_->setText(skipped_.isEmpty() ? tr("Latest evaluation: %1, %n quantized layer(s)", nullptr, e.quantizedLayers).arg(e.source)
                                       : tr("Last evaluation (before the latest result): %1, %n quantized layer(s)", nullptr,
                                            e.quantizedLayers).arg(e.source));
    table_->show();

    const double none = std::numeric_limits<double>::quiet_NaN();
    // Latest: core's numbers as they are, rounded only for display.
    setCell(LatestRow, BitsField, e.quantizedLayers > 0 ? QString::number(e.bitsPerWeight, 'f', 3) : tr("full precision"),
            e.quantizedLayers > 0 ? e.bitsPerWeight : none);
    setCell(LatestRow, KlField, klWithError(e.klMean, e.klStderr, 4), e.klMean);
    cells_[LatestRow][KlField]->setProperty("stderr", e.klStderr);
    setCell(LatestRow, P99Field, withDigits(e.klP99, 4), e.klP99);
    setCell(LatestRow, Top1Field, QString::number(100.0 * e.top1, 'f', 2) + QLatin1Char('%'), e.top1);
    setCell(LatestRow, PplField, withDigits(e.pplTest, 4), e.pplTest);
    setCell(LatestRow, PplRefField, withDigits(e.pplRef, 4), e.pplRef);

    // Change from the evaluation before, B - A as in Compare; lower KL is better.
    const bool hasPrevious = evals.size() > 1;
    rowLabels_[DeltaRow]->setVisible(hasPrevious);
    for (QLabel* c : cells_[DeltaRow]) c->setVisible(hasPrevious);
    if (hasPrevious) {
        const EvalSummary& p = evals[evals.size() - 2];
        setCell(DeltaRow, BitsField, withDigits(e.bitsPerWeight - p.bitsPerWeight, 3, true), e.bitsPerWeight - p.bitsPerWeight);
        const double dkl = e.klMean - p.klMean;
        setCell(DeltaRow, KlField, withDigits(dkl, 3, true), dkl);
        cells_[DeltaRow][KlField]->setStyleSheet(dkl == 0 ? QString()
                                                 : dkl < 0 ? QStringLiteral("QLabel { color: #28963c; }")
                                                           : QStringLiteral("QLabel { color: #c83c32; }"));
        setCell(DeltaRow, P99Field, withDigits(e.klP99 - p.klP99, 3, true), e.klP99 - p.klP99);
        setCell(DeltaRow, Top1Field, withDigits(100.0 * (e.top1 - p.top1), 3, true) + tr(" pt"), e.top1 - p.top1);
        setCell(DeltaRow, PplField, withDigits(e.pplTest - p.pplTest, 3, true), e.pplTest - p.pplTest);
        setCell(DeltaRow, PplRefField, withDigits(e.pplRef - p.pplRef, 3, true), e.pplRef - p.pplRef);
        const QString diff = protocolDifference(p.protocol, e.protocol, tr("the previous evaluation"), tr("the latest"));
        warning_->setText(tr("Δ not comparable: %1.").arg(diff));
        warning_->setVisible(!diff.isEmpty());
    }

    const bool hasUniform = !e.uniform.spec.isEmpty();
    for (QWidget* w : {static_cast<QWidget*>(rowLabels_[UniformRow]), static_cast<QWidget*>(cells_[UniformRow][BitsField]),
                       static_cast<QWidget*>(cells_[UniformRow][KlField]), static_cast<QWidget*>(uniformSpec_)})
        w->setVisible(hasUniform);
    if (hasUniform) {
        setCell(UniformRow, BitsField, QString::number(e.uniform.bitsPerWeight, 'f', 3), e.uniform.bitsPerWeight);
        setCell(UniformRow, KlField, withDigits(e.uniform.predictedKl, 4), e.uniform.predictedKl);
        const double gain = e.klMean - e.uniform.predictedKl;
        uniformSpec_->setText(tr("Uniform, pred.: %1 on every quantized layer, the least KL the sensitivity measurements "
                                 "predict at no more bits; the latest KL is %2 from it.")
                                  .arg(e.uniform.spec, withDigits(gain, 3, true)));
        uniformSpec_->setProperty("value", gain);
    }
    protocol_->setText(tr("Protocol: %1 (%2 scored tokens)").arg(e.protocol.describe()).arg(e.protocol.scoredTokens));
    protocol_->show();
}

}  // namespace quench::gui
