#pragma once
// Colours and small helpers every chart shares, so that a codec has the same colour in every chart and
// the charts read well on both the light and the dark system palette.
#include <QColor>
#include <QPalette>
#include <QString>

#include <string>

class QChart;
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
// "model.layers.3.self_attn.q_proj" -> "3.q_proj": axis labels and legends must stay short to be legible.
QString shortLayerName(const std::string& name);
// The layout every chart shows: a centred `message` (page 0) until it has data, then `view` (page 1).
QStackedLayout* noDataStack(QWidget* view, const QString& message, QWidget* parent);
// Numbers in tooltips and labels: 4 significant digits, scientific for very small or large values.
QString formatValue(double v);

}  // namespace quench::gui
