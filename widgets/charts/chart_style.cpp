#include "chart_style.h"

#include <QAbstractScrollArea>
#include <QLabel>
#include <QLocale>
#include <QStackedLayout>
#include <QVBoxLayout>

#include <QtCharts/QAbstractAxis>
#include <QtCharts/QChart>
#include <QtCharts/QLegend>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "model/layer_registry.h"

namespace quench::gui {

QString codecOfSpec(const std::string& spec) {
    const auto colon = spec.find(':');
    return QString::fromStdString(colon == std::string::npos ? spec : spec.substr(0, colon));
}

QColor codecColor(const QString& codec) {
    // Mid-lightness hues (Okabe-Ito / Tableau-like): legible as fills on white and on #2b2b2b.
    static const std::map<QString, QColor> fixed = {
        {QStringLiteral("rtn"), QColor(0x4e, 0x79, 0xa7)},       {QStringLiteral("gptq"), QColor(0xf2, 0x8e, 0x2b)},
        {QStringLiteral("paretoq"), QColor(0x59, 0xa1, 0x4f)},   {QStringLiteral("qamw"), QColor(0xb0, 0x7a, 0xa1)},
        {QStringLiteral("liftquant"), QColor(0xe1, 0x57, 0x59)}, {QStringLiteral("lcqat"), QColor(0x76, 0xb7, 0xb2)},
        {QStringLiteral("fp16"), QColor(0x9c, 0x9c, 0x9c)},      {QStringLiteral("fp32"), QColor(0x9c, 0x9c, 0x9c)},
    };
    const auto it = fixed.find(codec);
    if (it != fixed.end()) return it->second;
    return QColor::fromHsv(int(qHash(codec) % 360), 150, 200);
}

QColor scaleColor(double t) {
    // Viridis sampled at 9 points, linearly interpolated.
    static const std::array<QColor, 9> stops = {
        QColor(0x44, 0x01, 0x54), QColor(0x47, 0x2c, 0x7a), QColor(0x3b, 0x52, 0x8b),
        QColor(0x2c, 0x72, 0x8e), QColor(0x21, 0x91, 0x8c), QColor(0x28, 0xae, 0x80),
        QColor(0x5e, 0xc9, 0x62), QColor(0xad, 0xdc, 0x30), QColor(0xfd, 0xe7, 0x25)};
    if (!std::isfinite(t)) t = 0;
    t = std::clamp(t, 0.0, 1.0) * double(stops.size() - 1);
    const int i = std::min(int(t), int(stops.size()) - 2);
    const double f = t - i;
    const QColor& a = stops[i];
    const QColor& b = stops[i + 1];
    return QColor::fromRgbF(float(a.redF() + f * (b.redF() - a.redF())), float(a.greenF() + f * (b.greenF() - a.greenF())),
                            float(a.blueF() + f * (b.blueF() - a.blueF())));
}

void applyPalette(QChart* chart, const QPalette& palette) {
    if (!chart) return;
    const QColor text = palette.color(QPalette::WindowText);
    QColor grid = palette.color(QPalette::Mid);
    chart->setBackgroundBrush(palette.brush(QPalette::Base));
    chart->setPlotAreaBackgroundVisible(false);
    chart->setTitleBrush(text);
    chart->legend()->setLabelColor(text);
    for (QAbstractAxis* axis : chart->axes()) {
        axis->setLabelsColor(text);
        axis->setTitleBrush(text);
        axis->setLinePenColor(grid);
        grid.setAlpha(110);
        axis->setGridLineColor(grid);
        grid.setAlpha(255);
    }
}

QString shortLayerName(const std::string& name) { return QString::fromStdString(quench::short_layer_name(name)); }

int layerKindRank(const std::string& name) {
    const std::string brief = quench::short_layer_name(name);
    const auto k = quench::layer_kind_from_name(brief.substr(brief.find('.') + 1));  // npos + 1: all of it
    return k ? int(*k) : 100;
}

LayerFilter::LayerFilter(const QString& text) {
    for (const QString& t : text.split(QRegularExpression(QStringLiteral("[,\\s]+")), Qt::SkipEmptyParts)) {
        if (t.contains(QLatin1Char('*')) || t.contains(QLatin1Char('?')))
            wild_.emplace_back(QRegularExpression::wildcardToRegularExpression(t));
        else
            plain_ << t;
    }
}

bool LayerFilter::matches(const std::string& name) const {
    if (isEmpty()) return true;
    const QString full = QString::fromStdString(name), brief = shortLayerName(name);
    for (const QRegularExpression& re : wild_)
        if (re.match(brief).hasMatch() || re.match(full).hasMatch()) return true;
    const int dot = brief.indexOf(QLatin1Char('.'));
    const QString block = dot < 0 ? QString() : brief.left(dot), kind = dot < 0 ? brief : brief.mid(dot + 1);
    // Short terms match whole parts only: "3" is not block 13, and "o" is o_proj, not every name with an o.
    for (const QString& t : plain_)
        if (t == brief || t == block || t == kind || (t.size() >= 3 && !t.front().isDigit() && full.contains(t)))
            return true;
    return false;
}

QString formatBytes(double bytes) {
    return QLocale().formattedDataSize(qint64(std::llround(std::max(0.0, bytes))), 2, QLocale::DataSizeIecFormat);
}

QLabel* addHintOverlay(QWidget* view) {
    // On a scroll area (a chart view) the label goes on the viewport, which the area sizes itself.
    auto* area = qobject_cast<QAbstractScrollArea*>(view);
    QWidget* host = area ? area->viewport() : view;
    auto* hint = new QLabel(host);
    hint->setAlignment(Qt::AlignCenter);
    hint->setWordWrap(true);
    hint->setAttribute(Qt::WA_TransparentForMouseEvents);
    hint->setForegroundRole(QPalette::PlaceholderText);
    hint->hide();
    auto* layout = new QVBoxLayout(host);
    layout->setContentsMargins(40, 40, 40, 40);
    layout->addWidget(hint);
    return hint;
}

QString formatValue(double v) {
    if (std::isnan(v)) return QStringLiteral("n/a");
    const double a = std::abs(v);
    if (a != 0 && (a < 1e-3 || a >= 1e6)) return QString::number(v, 'e', 3);
    return QString::number(v, 'g', 4);
}

QStackedLayout* noDataStack(QWidget* view, const QString& message, QWidget* parent) {
    auto* noData = new QLabel(message, parent);
    noData->setAlignment(Qt::AlignCenter);
    // Wrapped: a stacked layout is as wide as its widest page, and one line of message would set the
    // chart's minimum width even while the chart itself shows.
    noData->setWordWrap(true);
    auto* stack = new QStackedLayout;
    stack->addWidget(noData);
    stack->addWidget(view);
    return stack;
}

}  // namespace quench::gui
