#include "sensitivity_heatmap.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QLineEdit>
#include <QLinearGradient>
#include <QPainter>
#include <QScrollArea>
#include <QStackedLayout>
#include <QToolTip>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "chart_style.h"

namespace quench::gui {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Kinds in the order of a transformer block; unknown kinds follow alphabetically.
int kindRank(const std::string& k) {
    static const char* order[] = {"q", "k", "v", "o", "gate", "up", "down", "lm_head"};
    for (int i = 0; i < 8; ++i)
        if (k == order[i]) return i;
    return 8;
}

double costOf(const SensitivityPoint& p, CostSource s, bool* proxy) {
    if (!p.available) return kNaN;
    if (s != CostSource::Proxy && p.has_kl) {
        *proxy = false;
        return p.kl;
    }
    if (s != CostSource::Kl && p.proxy_kl >= 0) {
        *proxy = true;
        return p.proxy_kl;
    }
    return kNaN;
}

}  // namespace

// The painted grid and its colour legend; hover shows the cell's tooltip.
class HeatmapCanvas : public QWidget {
public:
    explicit HeatmapCanvas(SensitivityHeatmap* owner) : QWidget(owner), h_(owner) {
        setMouseTracking(true);
        setMinimumSize(300, 200);
        setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    }

    // Zoomed in, every row is a line of text high and the inner scroll area scrolls; fitted, the rows share
    // the height (row labels thin out when they would overlap).
    void fitRows(bool fit) {
        const QFontMetrics fm(font());
        const int rows = std::max(1, h_->rowCount());
        setMinimumHeight(fit ? 200 : int(fm.height() * (2.2 + 1.3 * rows)));
    }

    QRectF grid() const {
        const QFontMetrics fm(font());
        const double left = fm.horizontalAdvance(QStringLiteral("block 000")) + 10;
        const double legend = fm.horizontalAdvance(QStringLiteral("0.000e-00")) + 40;
        return QRectF(left, fm.height() * 1.6, std::max(10.0, width() - left - legend),
                      std::max(10.0, height() - fm.height() * 2.2));
    }

    bool cellAt(QPoint pos, int* r, int* c) const {
        const QRectF g = grid();
        if (!g.contains(pos) || h_->rowCount() == 0 || h_->columnCount() == 0) return false;
        *r = std::min(h_->rowCount() - 1, int((pos.y() - g.top()) / g.height() * h_->rowCount()));
        *c = std::min(h_->columnCount() - 1, int((pos.x() - g.left()) / g.width() * h_->columnCount()));
        return true;
    }

protected:
    bool event(QEvent* e) override {
        if (e->type() == QEvent::ToolTip) {
            auto* he = static_cast<QHelpEvent*>(e);
            int r = 0, c = 0;
            if (cellAt(he->pos(), &r, &c)) QToolTip::showText(he->globalPos(), h_->cellToolTip(r, c), this);
            else QToolTip::showText(he->globalPos(), toolTip(), this);
            return true;
        }
        return QWidget::event(e);
    }

    void paintEvent(QPaintEvent*) override {
        QPainter p(this);
        p.fillRect(rect(), palette().color(QPalette::Base));
        const QColor text = palette().color(QPalette::WindowText);
        const QFontMetrics fm(font());
        const QRectF g = grid();
        const int rows = h_->rowCount(), cols = h_->columnCount();
        if (rows == 0 || cols == 0) return;
        const double cw = g.width() / cols, ch = g.height() / rows;
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) {
                const QRectF cell(g.left() + c * cw, g.top() + r * ch, cw, ch);
                p.fillRect(cell.adjusted(0, 0, ch > 6 ? -1 : 0, ch > 6 ? -1 : 0), h_->cellColor(r, c));
            }
        p.setPen(text);
        for (int c = 0; c < cols; ++c)
            p.drawText(QRectF(g.left() + c * cw, 0, cw, g.top()), Qt::AlignCenter, h_->columnLabel(c));
        // Row labels: every row when they fit, else every n-th.
        const int every = std::max(1, int(std::ceil(fm.height() / ch)));
        for (int r = 0; r < rows; r += every)
            p.drawText(QRectF(0, g.top() + r * ch, g.left() - 6, ch), Qt::AlignRight | Qt::AlignVCenter,
                       h_->rowLabel(r));

        // Legend: the log colour scale, bottom = lowest KL.
        const QRectF bar(g.right() + 12, g.top(), 14, g.height());
        QLinearGradient grad(bar.bottomLeft(), bar.topLeft());
        for (int i = 0; i <= 8; ++i) grad.setColorAt(i / 8.0, scaleColor(i / 8.0));
        p.fillRect(bar, grad);
        p.drawText(QPointF(bar.right() + 4, bar.top() + fm.ascent()), formatValue(h_->scaleMax()));
        p.drawText(QPointF(bar.right() + 4, bar.bottom()), formatValue(h_->scaleMin()));
        p.save();
        p.translate(bar.right() + 4 + fm.height(), bar.center().y());
        p.rotate(90);
        p.drawText(QRectF(-bar.height() / 2, -fm.height(), bar.height(), fm.height()), Qt::AlignCenter,
                   SensitivityHeatmap::tr("KL, nats/token (log)"));
        p.restore();
    }

private:
    SensitivityHeatmap* h_;
};

SensitivityHeatmap::SensitivityHeatmap(QWidget* parent) : QWidget(parent) {
    candidateBox_ = new QComboBox(this);
    candidateBox_->setToolTip(tr("Which candidate setting the cells show, or each layer's mean over its candidates"));
    // Canonical specs are long (gptq's lists every option): sized to a short one, the row fits the tab.
    candidateBox_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    candidateBox_->setMinimumContentsLength(14);
    connect(candidateBox_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (i >= 0) setCandidate(candidateBox_->itemData(i).toString());
    });
    zoomBox_ = new QComboBox(this);
    zoomBox_->addItem(tr("fit"), true);
    zoomBox_->addItem(tr("one line each"), false);
    zoomBox_->setToolTip(tr("Rows: all in the view, or each a line of text high with a scroll bar (many blocks)"));
    connect(zoomBox_, qOverload<int>(&QComboBox::activated), this,
            [this](int i) { setFitRows(zoomBox_->itemData(i).toBool()); });
    filter_ = new QLineEdit(this);
    filter_->setPlaceholderText(tr("filter: 3, down, 1*.q"));
    filter_->setClearButtonEnabled(true);
    filter_->setToolTip(tr("Show only the blocks and kinds of matching layers: a block (3), a kind (down), a short "
                           "name (3.down), a part of the full name (mlp), or a wildcard (1*.q)"));
    connect(filter_, &QLineEdit::textChanged, this, [this] { recompute(); });
    canvas_ = new HeatmapCanvas(this);
    canvas_->setToolTip(tr("Model KL divergence from full precision when only this layer is quantized with the "
                           "setting: how sensitive the model is to this layer. Darker is less sensitive."));
    scrollArea_ = new QScrollArea(this);
    scrollArea_->setWidget(canvas_);
    scrollArea_->setWidgetResizable(true);
    scrollArea_->setFrameShape(QFrame::NoFrame);
    scrollArea_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    stack_ = noDataStack(scrollArea_, tr("No data: measure sensitivity (Method panel; it needs a calibration text in "
                                         "the Data panel) to see the heatmap."), this);
    auto* top = new QHBoxLayout;
    top->addWidget(new QLabel(tr("Setting:"), this));
    top->addWidget(candidateBox_, 2);
    top->addWidget(new QLabel(tr("Rows:"), this));
    top->addWidget(zoomBox_);
    top->addWidget(filter_, 1);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addLayout(stack_, 1);
    recompute();
}

void SensitivityHeatmap::setFitRows(bool fit) {
    fit_ = fit;
    zoomBox_->setCurrentIndex(zoomBox_->findData(fit));
    static_cast<HeatmapCanvas*>(canvas_)->fitRows(fit_);
}

void SensitivityHeatmap::setFilter(const QString& text) { filter_->setText(text); }
QString SensitivityHeatmap::filter() const { return filter_->text(); }

QStringList SensitivityHeatmap::candidates() const {
    QStringList out;
    std::set<std::string> seen;
    for (const SensitivityLayer& l : m_.layers())
        for (const SensitivityPoint* p : m_.points_of(l.name))
            if (seen.insert(p->spec).second) out << QString::fromStdString(p->spec);
    return out;
}

void SensitivityHeatmap::setMeasurements(const Measurements& m, CostSource source) {
    m_ = m;
    source_ = source;
    if (!candidate_.isEmpty() && !candidates().contains(candidate_)) candidate_.clear();
    candidateBox_->blockSignals(true);
    candidateBox_->clear();
    candidateBox_->addItem(tr("mean over candidates"), QString());
    for (const QString& c : candidates()) candidateBox_->addItem(c, c);
    candidateBox_->setCurrentIndex(std::max(0, candidateBox_->findData(candidate_)));
    candidateBox_->blockSignals(false);
    recompute();
}

void SensitivityHeatmap::setCandidate(const QString& spec) {
    candidate_ = spec;
    candidateBox_->blockSignals(true);
    candidateBox_->setCurrentIndex(std::max(0, candidateBox_->findData(spec)));
    candidateBox_->blockSignals(false);
    recompute();
}

void SensitivityHeatmap::recompute() {
    // Rows and columns are the blocks and kinds of the layers the filter lets through.
    const LayerFilter filter(filter_->text());
    std::set<int> blocks;
    std::set<std::pair<int, std::string>> kinds;
    std::vector<const SensitivityLayer*> shown;
    for (const SensitivityLayer& l : m_.layers()) {
        if (!filter.matches(l.name)) continue;
        shown.push_back(&l);
        blocks.insert(l.block);
        kinds.insert({kindRank(l.kind), l.kind});
    }
    blocks_.assign(blocks.begin(), blocks.end());
    if (!blocks_.empty() && blocks_.front() < 0) std::rotate(blocks_.begin(), blocks_.begin() + 1, blocks_.end());
    kinds_.clear();
    for (const auto& k : kinds) kinds_.push_back(k.second);
    const size_t n = blocks_.size() * kinds_.size();
    layer_.assign(n, std::string());
    value_.assign(n, kNaN);
    proxy_.assign(n, 0);
    lo_ = hi_ = 0;
    const std::string want = candidate_.toStdString();
    for (const SensitivityLayer* l : shown) {
        const size_t r = size_t(std::find(blocks_.begin(), blocks_.end(), l->block) - blocks_.begin());
        const size_t c = size_t(std::find(kinds_.begin(), kinds_.end(), l->kind) - kinds_.begin());
        const size_t i = r * kinds_.size() + c;
        layer_[i] = l->name;
        double sum = 0;
        int count = 0;
        bool anyProxy = false;
        for (const SensitivityPoint* p : m_.points_of(l->name)) {
            if (!want.empty() && p->spec != want) continue;
            bool proxy = false;
            const double v = costOf(*p, source_, &proxy);
            if (std::isnan(v)) continue;
            sum += v;
            ++count;
            anyProxy = anyProxy || proxy;
        }
        if (count == 0) continue;
        value_[i] = sum / count;
        proxy_[i] = anyProxy;
        if (value_[i] > 0) {
            lo_ = lo_ == 0 ? value_[i] : std::min(lo_, value_[i]);
            hi_ = std::max(hi_, value_[i]);
        }
    }
    const bool filteredOut = !m_.empty() && blocks_.empty();
    stack_->setCurrentIndex(m_.empty() ? 0 : 1);
    if (filteredOut) stack_->setCurrentIndex(0);
    static_cast<QLabel*>(stack_->widget(0))->setText(
        filteredOut ? tr("No layer matches the filter '%1'.").arg(filter_->text())
                    : tr("No data: measure sensitivity (Method panel; it needs a calibration text in the Data panel) "
                         "to see the heatmap."));
    static_cast<HeatmapCanvas*>(canvas_)->fitRows(fit_);
    canvas_->update();
}

QString SensitivityHeatmap::rowLabel(int r) const {
    const int b = blocks_.at(size_t(r));
    return b < 0 ? tr("other") : tr("block %1").arg(b);
}
QString SensitivityHeatmap::columnLabel(int c) const { return QString::fromStdString(kinds_.at(size_t(c))); }
double SensitivityHeatmap::cellValue(int r, int c) const { return value_.at(size_t(r) * kinds_.size() + size_t(c)); }
QString SensitivityHeatmap::cellLayer(int r, int c) const {
    return QString::fromStdString(layer_.at(size_t(r) * kinds_.size() + size_t(c)));
}

QColor SensitivityHeatmap::cellColor(int r, int c) const {
    const double v = cellValue(r, c);
    if (std::isnan(v)) return palette().color(QPalette::Mid);
    if (!(v > 0) || hi_ <= lo_) return scaleColor(v > 0 ? 1.0 : 0.0);
    return scaleColor(std::log(v / lo_) / std::log(hi_ / lo_));
}

QString SensitivityHeatmap::cellToolTip(int r, int c) const {
    const QString layer = cellLayer(r, c);
    if (layer.isEmpty()) return tr("No %1 layer in %2").arg(columnLabel(c), rowLabel(r));
    const double v = cellValue(r, c);
    const QString what = candidate_.isEmpty() ? tr("mean over its candidates") : candidate_;
    if (std::isnan(v)) return tr("<b>%1</b><br>%2: not measured").arg(layer.toHtmlEscaped(), what.toHtmlEscaped());
    return tr("<b>%1</b><br>%2<br>KL <b>%3</b> nats/token%4<br><i>Model KL from full precision with only this "
              "layer quantized.</i>")
        .arg(layer.toHtmlEscaped(), what.toHtmlEscaped(), formatValue(v),
             proxy_[size_t(r) * kinds_.size() + size_t(c)] ? tr(" (proxy: output error x the layer's factor)") : QString());
}

}  // namespace quench::gui
