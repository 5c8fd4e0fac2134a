#include "token_kl_view.h"

#include <QEvent>
#include <QHelpEvent>
#include <QLabel>
#include <QLinearGradient>
#include <QPainter>
#include <QStackedLayout>
#include <QTextBrowser>
#include <QTextCursor>
#include <QToolTip>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis/model_eval.h"
#include "chart_style.h"
#include "model/tokenizer.h"

namespace quench::gui {

namespace {

// The hot end of the scale: a red that stays readable under the palette's text colour in light and dark.
const QColor kHot(0xe1, 0x57, 0x59);

QColor blend(const QColor& base, double t) {
    t = std::clamp(t, 0.0, 1.0);
    return QColor::fromRgbF(float(base.redF() + t * (kHot.redF() - base.redF())),
                            float(base.greenF() + t * (kHot.greenF() - base.greenF())),
                            float(base.blueF() + t * (kHot.blueF() - base.blueF())));
}

void replaceAll(std::string& s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// The legend: base colour to hot, 0 .. scaleMax (square-root scale, as the text).
class KlLegend : public QWidget {
public:
    explicit KlLegend(const TokenKlView* v, QWidget* parent) : QWidget(parent), v_(v) {
        setFixedHeight(fontMetrics().height() * 2);
        setToolTip(TokenKlView::tr("KL(P_ref || P_quant) at each token, nats: how much the quantized model's "
                                   "next-token distribution differs from full precision there. Square-root colour "
                                   "scale, saturating at the 99th percentile: the tokens above it (\u2265) all take "
                                   "the full colour; hover a token for its own value."));
    }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter p(this);
        const QFontMetrics fm(font());
        const QString lo = QStringLiteral("KL 0"), hi = v_->legendMaxText();
        const QRectF bar(fm.horizontalAdvance(lo) + 8, fm.height() * 0.4, 200, fm.height() * 1.1);
        QLinearGradient g(bar.topLeft(), bar.topRight());
        for (int i = 0; i <= 8; ++i) g.setColorAt(i / 8.0, blend(palette().color(QPalette::Base), std::sqrt(i / 8.0)));
        p.fillRect(bar, g);
        p.setPen(palette().color(QPalette::Mid));
        p.drawRect(bar);
        p.setPen(palette().color(QPalette::WindowText));
        p.drawText(QRectF(0, bar.top(), bar.left() - 4, bar.height()), Qt::AlignRight | Qt::AlignVCenter, lo);
        p.drawText(QPointF(bar.right() + 6, bar.center().y() + fm.ascent() / 2.0 - 1), hi);
    }

private:
    const TokenKlView* v_;
};

}  // namespace

TokenKlView::TokenKlView(QWidget* parent) : QWidget(parent) {
    browser_ = new QTextBrowser(this);
    browser_->setOpenLinks(false);
    QFont f = browser_->font();  // the text is the subject here: a little larger than the UI font
    f.setPointSizeF(f.pointSizeF() * 1.2);
    browser_->setFont(f);
    browser_->viewport()->installEventFilter(this);
    browser_->viewport()->setMouseTracking(true);
    legend_ = new KlLegend(this, this);
    message_ = new QLabel(tr("No data: evaluate KL (Ctrl+K; it needs an evaluation text in the Data panel) to see it token by token."), this);
    message_->setAlignment(Qt::AlignCenter);
    message_->setWordWrap(true);
    auto* page = new QWidget(this);
    auto* pageLayout = new QVBoxLayout(page);
    pageLayout->setContentsMargins(0, 0, 0, 0);
    pageLayout->addWidget(legend_);
    pageLayout->addWidget(browser_, 1);
    stack_ = new QStackedLayout;
    stack_->addWidget(message_);
    stack_->addWidget(page);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(stack_);
}

std::vector<float> TokenKlView::alignKl(const KlReport& report, std::size_t token_count) {
    std::vector<float> kl(token_count, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t j = 0; j < report.per_token_kl.size(); ++j) {
        const int64_t t = report.first_scored_token + int64_t(j);
        if (t >= 0 && size_t(t) < token_count) kl[size_t(t)] = report.per_token_kl[j];
    }
    return kl;
}

std::vector<std::string> TokenKlView::tokenPieces(const Tokenizer& tok, const std::vector<int32_t>& ids) {
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (int32_t id : ids) {
        std::string s = tok.token(id);
        replaceAll(s, "\xe2\x96\x81", " ");  // ▁ (SentencePiece space)
        replaceAll(s, "\xc4\xa0", " ");      // Ġ (byte-level space)
        replaceAll(s, "\xc4\x8a", "\n");     // Ċ (byte-level newline)
        replaceAll(s, "<0x0A>", "\n");
        replaceAll(s, "<0x09>", "\t");
        out.push_back(std::move(s));
    }
    return out;
}

void TokenKlView::setTokens(std::vector<std::string> pieces, std::vector<int32_t> ids, std::vector<float> kl) {
    if (pieces.size() != ids.size() || kl.size() != ids.size()) {
        pieces_.clear(), ids_.clear(), kl_.clear(), start_.clear();
        message_->setText(tr("Cannot show the tokens: %1 pieces, %2 ids and %3 KL values differ in number.")
                              .arg(pieces.size()).arg(ids.size()).arg(kl.size()));
        stack_->setCurrentIndex(0);
        return;
    }
    pieces_ = std::move(pieces);
    ids_ = std::move(ids);
    kl_ = std::move(kl);
    // Saturate at the 99th percentile so a few outliers do not wash out the rest.
    std::vector<float> scored;
    for (float v : kl_)
        if (std::isfinite(v)) scored.push_back(std::max(0.0f, v));
    scaleMax_ = 0;
    clipped_ = 0;
    if (!scored.empty()) {
        const size_t k = std::min(scored.size() - 1, size_t(0.99 * double(scored.size())));
        std::nth_element(scored.begin(), scored.begin() + long(k), scored.end());
        scaleMax_ = scored[k];
        clipped_ = int(std::count_if(scored.begin(), scored.end(), [&](float v) { return v > scaleMax_; }));
    }
    message_->setText(tr("No data: evaluate KL (Ctrl+K; it needs an evaluation text in the Data panel) to see it token by token."));
    render();
}

QString TokenKlView::legendMaxText() const {
    // The scale saturates: say so, or a reader takes the top colour for the largest KL in the text.
    const QString v = formatValue(scaleMax_) + QStringLiteral(" nats");
    return clipped_ > 0 ? tr("\u2265 %1 (%n token(s) above)", nullptr, clipped_).arg(v) : v;
}

QColor TokenKlView::tokenColor(int i) const {
    const double v = kl_.at(size_t(i));
    const QColor base = palette().color(QPalette::Base);
    if (!std::isfinite(v) || scaleMax_ <= 0) return base;
    return blend(base, std::sqrt(std::max(0.0, v) / scaleMax_));
}

QString TokenKlView::tokenToolTip(int i) const {
    const size_t k = size_t(i);
    const QString piece = QString::fromStdString(pieces_.at(k)).replace(QLatin1Char('\n'), QStringLiteral("\\n"));
    return tr("token <b>'%1'</b> (id %2)<br>KL %3 nats<br><i>KL divergence of the quantized model's prediction of "
              "this token from full precision's</i>")
        .arg(piece.toHtmlEscaped())
        .arg(ids_[k])
        .arg(std::isfinite(kl_[k]) ? formatValue(kl_[k]) : tr("not scored"));
}

int TokenKlView::tokenAtPosition(int pos) const {
    const auto it = std::upper_bound(start_.begin(), start_.end(), pos);
    if (it == start_.begin()) return -1;
    return int(it - start_.begin()) - 1;
}

void TokenKlView::render() {
    browser_->clear();
    start_.assign(ids_.size(), 0);
    QTextCursor cursor(browser_->document());
    QTextCharFormat fmt;
    fmt.setForeground(palette().color(QPalette::Text));
    // One edit block: the document lays itself out once at the end, not after each of thousands of tokens.
    cursor.beginEditBlock();
    for (size_t i = 0; i < ids_.size(); ++i) {
        start_[i] = cursor.position();
        fmt.setBackground(tokenColor(int(i)));
        cursor.insertText(QString::fromStdString(pieces_[i]), fmt);
    }
    cursor.endEditBlock();
    browser_->moveCursor(QTextCursor::Start);
    legend_->update();
    stack_->setCurrentIndex(ids_.empty() ? 0 : 1);
}

bool TokenKlView::eventFilter(QObject* watched, QEvent* e) {
    if (watched == browser_->viewport() && e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        // cursorForPosition gives the nearest gap between characters; the character under the mouse is the
        // one before that gap when the mouse is left of it.
        const QTextCursor c = browser_->cursorForPosition(he->pos());
        int pos = c.position();
        if (he->pos().x() < browser_->cursorRect(c).x() && pos > 0) --pos;
        const int t = tokenAtPosition(pos);
        if (t >= 0) QToolTip::showText(he->globalPos(), tokenToolTip(t), browser_->viewport());
        else QToolTip::hideText();
        return true;
    }
    return QWidget::eventFilter(watched, e);
}

void TokenKlView::changeEvent(QEvent* e) {
    QWidget::changeEvent(e);
    if (e->type() == QEvent::PaletteChange && !ids_.empty()) render();
}

}  // namespace quench::gui
