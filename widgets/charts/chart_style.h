#pragma once
// Colours and small helpers every chart shares, so that a codec has the same colour in every chart and
// the charts read well on both the light and the dark system palette.
#include <QColor>
#include <QPalette>
#include <QRegularExpression>
#include <QString>
#include <QStringList>

#include <string>
#include <vector>

class QChart;
class QLabel;
class QStackedLayout;
class QWidget;

namespace quench::gui {

// The codec name of a canonical spec ("rtn:b=4,g=64" -> "rtn"); "fp16"/"fp32" stay as they are.
QString codecOfSpec(const std::string& spec);
// A fixed, mid-lightness colour per codec (readable on white and on dark grey); unknown names get a
// colour hashed from the name so that it is stable between runs.
QColor codecColor(const QString& codec);
// Sequential colour scale for t in [0, 1] (a viridis-like ramp: monotone lightness, colour-blind safe).
QColor scaleColor(double t);
// Applies the widget palette (window/text/mid colours) to a chart: background, title, legend, axes.
void applyPalette(QChart* chart, const QPalette& palette);
// "model.layers.3.self_attn.q_proj" -> "3.q" (core's short_layer_name): axis labels, legends and tree rows
// must stay short to be legible; every view keeps the full name for its tooltips.
QString shortLayerName(const std::string& name);
// Where a layer's kind comes in a transformer block (q, k, v, o, gate, up, down, lm_head; others after):
// the "by kind" orders group layers with it.
int layerKindRank(const std::string& name);
// The layer filter every layer view offers, so one pattern works everywhere. Terms are separated by commas
// or spaces; a layer matches when any term does. A term with * or ? is a wildcard over the short or the full
// name ("1*.q", "*.down"); a plain term matches the short name, its block ("3") or kind ("down") part, or,
// from 3 characters, a part of the full name ("mlp", "attn"). An empty filter matches every layer.
class LayerFilter {
public:
    explicit LayerFilter(const QString& text = {});
    bool matches(const std::string& name) const;
    bool isEmpty() const { return plain_.isEmpty() && wild_.empty(); }

private:
    QStringList plain_;
    std::vector<QRegularExpression> wild_;  // compiled once: views test every layer on each keystroke
};
// Byte sizes in one convention across the window: binary units (KiB, MiB, GiB), two decimals.
QString formatBytes(double bytes);
// A centred, wrapped hint drawn over a view (a chart's "needs a calibration text" when it has nothing to
// plot); hidden until given text. Mouse events pass through to the view.
QLabel* addHintOverlay(QWidget* view);
// The layout every chart shows: a centred `message` (page 0) until it has data, then `view` (page 1).
QStackedLayout* noDataStack(QWidget* view, const QString& message, QWidget* parent);
// Numbers in tooltips and labels: 4 significant digits, scientific for very small or large values.
QString formatValue(double v);

}  // namespace quench::gui
