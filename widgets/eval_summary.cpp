#include "eval_summary.h"

#include <QCoreApplication>
#include <QFileInfo>

#include <algorithm>
#include <cmath>

#include "analysis/eval_windows.h"

namespace quench::gui {

EvalProtocolView protocolView(const quench::EvalProtocol& p) {
    EvalProtocolView v;
    v.textTokens = p.text_tokens;
    v.scoredTokens = p.scored_tokens;
    v.ctx = p.ctx;
    v.stride = p.stride;
    v.bosPerWindow = p.bos_per_window;
    return v;
}

namespace {

QString tr(const char* text) { return QCoreApplication::translate("EvalSummary", text); }

bool sameText(const EvalProtocolView& a, const EvalProtocolView& b) {
    // The digest says whether two texts are the same where both runs recorded one; the path otherwise.
    if (!a.sha256.isEmpty() && !b.sha256.isEmpty()) return a.sha256 == b.sha256;
    return a.file == b.file;
}

}  // namespace

// 0.4783 -> 4 decimals for 4 digits, 5.40 -> 2 for 3 digits.
int decimalsFor(double v, int digits) {
    if (!(std::abs(v) > 0) || !std::isfinite(v)) return digits;
    return std::clamp(digits - 1 - int(std::floor(std::log10(std::abs(v)))), 0, 12);
}

QString withDigits(double v, int digits, bool signed_) {
    const QString s = QString::number(v, 'f', decimalsFor(v, digits));
    return signed_ && v > 0 ? QLatin1Char('+') + s : s;
}

QString EvalProtocolView::describe() const {
    const QString name = file.isEmpty() ? tr("an unrecorded text") : QFileInfo(file).fileName();
    QString s = tr("%1 tokens of %2 at ctx %3").arg(textTokens).arg(name).arg(ctx);
    if (stride != ctx) s += tr(", stride %1").arg(stride);
    if (bosPerWindow) s += tr(", BOS per window");
    return s;
}

QString protocolDifference(const EvalProtocolView& a, const EvalProtocolView& b, const QString& nameA,
                           const QString& nameB) {
    const bool text = sameText(a, b);
    if (text && a.textTokens == b.textTokens && a.scoredTokens == b.scoredTokens && a.ctx == b.ctx &&
        a.stride == b.stride && a.bosPerWindow == b.bosPerWindow)
        return {};
    QString da = a.describe(), db = b.describe();
    if (!text && QFileInfo(a.file).fileName() == QFileInfo(b.file).fileName() && !a.sha256.isEmpty()) {
        // Same name, other contents: only the digests tell them apart.
        da += tr(" (sha256 %1)").arg(a.sha256.left(12));
        db += tr(" (sha256 %1)").arg(b.sha256.left(12));
    }
    return tr("%1 used %2, %3 %4").arg(nameA, da, nameB, db);
}

QString klWithError(double mean, double stderr_, int digits) {
    const int d = decimalsFor(mean, digits);
    return QStringLiteral("%1 ± %2").arg(mean, 0, 'f', d).arg(stderr_, 0, 'f', d);
}

QString summaryLine(const EvalSummary& e) {
    QString line = tr("KL %1 nats, top-1 %2%, PPL %3 (fp %4)")
                       .arg(klWithError(e.klMean, e.klStderr, 3))
                       .arg(100.0 * e.top1, 0, 'f', 1)
                       .arg(e.pplTest, 0, 'f', decimalsFor(e.pplTest, 3))
                       .arg(e.pplRef, 0, 'f', decimalsFor(e.pplRef, 3));
    if (e.quantizedLayers > 0) line += tr(" at %1 b/w").arg(e.bitsPerWeight, 0, 'f', 3);
    else line += tr(" (no layer quantized)");
    return line;
}

}  // namespace quench::gui
