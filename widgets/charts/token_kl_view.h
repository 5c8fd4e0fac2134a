#pragma once
// Per-token KL drill-down: the evaluation text with each token's background coloured by the KL of the
// quantized model's prediction of that token (a KlReport's per_token_kl), a colour legend, and a hover
// tooltip with the token, its id and its KL. Tokens without a score (before the first scored one) stay plain.
#include <QColor>
#include <QString>
#include <QWidget>

#include <cstdint>
#include <string>
#include <vector>

class QLabel;
class QStackedLayout;
class QTextBrowser;

namespace quench {
struct KlReport;
class Tokenizer;
}  // namespace quench

namespace quench::gui {

class TokenKlView : public QWidget {
    Q_OBJECT
public:
    explicit TokenKlView(QWidget* parent = nullptr);

    // pieces[i]: the text token i adds (see tokenPieces); kl[i]: NaN for an unscored token. The three vectors
    // must have the same length; otherwise the view shows an error and no tokens.
    void setTokens(std::vector<std::string> pieces, std::vector<int32_t> ids, std::vector<float> kl);
    // KL per token of `token_count` tokens from a report: per_token_kl[j] belongs to token
    // first_scored_token + j; the rest are NaN.
    static std::vector<float> alignKl(const KlReport& report, std::size_t token_count);
    // The display text of each token: the vocabulary string with the SentencePiece / byte-level space and
    // newline markers ("▁", "Ġ", "Ċ", "<0x0A>") turned back into spaces and newlines.
    static std::vector<std::string> tokenPieces(const Tokenizer& tok, const std::vector<int32_t>& ids);

    int tokenCount() const { return int(ids_.size()); }
    double tokenKl(int i) const { return kl_.at(size_t(i)); }
    QColor tokenColor(int i) const;   // background drawn behind token i (Base for unscored tokens)
    QString tokenToolTip(int i) const;
    int tokenAtPosition(int docPos) const;  // token holding a document character position; -1 none
    double scaleMax() const { return scaleMax_; }  // KL at the full colour (the 99th percentile)
    int clippedCount() const { return clipped_; }  // tokens above scaleMax (drawn at the full colour)
    QString legendMaxText() const;  // the legend's top end: "≥ 2.12 nats (3 tokens above)" when it clips
    bool showsNoData() const { return ids_.empty(); }
    QTextBrowser* browser() const { return browser_; }

protected:
    bool eventFilter(QObject* watched, QEvent* e) override;  // tooltips over the text
    void changeEvent(QEvent* e) override;                    // re-colour on light/dark switches

private:
    void render();

    std::vector<std::string> pieces_;
    std::vector<int32_t> ids_;
    std::vector<float> kl_;
    std::vector<int> start_;  // document position where each token's text starts
    double scaleMax_ = 0;
    int clipped_ = 0;
    QTextBrowser* browser_ = nullptr;
    QWidget* legend_ = nullptr;
    QLabel* message_ = nullptr;
    QStackedLayout* stack_ = nullptr;
};

}  // namespace quench::gui
