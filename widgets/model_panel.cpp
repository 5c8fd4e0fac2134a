#include "model_panel.h"

#include <QComboBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QMenu>
#include <QMimeData>
#include <QPushButton>
#include <QStyle>
#include <QStyledItemDelegate>
#include <QToolButton>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <cmath>
#include <limits>
#include <map>

#include "app_settings.h"
#include "charts/chart_style.h"
#include "common/error.h"
#include "workbench_session.h"

namespace quench::gui {

namespace {
constexpr int kIndexRole = Qt::UserRole;  // registry index of a layer item; -1 for a block item
const char* const kKinds[] = {"q", "k", "v", "o", "gate", "up", "down", "lm_head"};

QString bitsText(double v) { return std::isfinite(v) ? QString::number(v, 'g', 4) : QStringLiteral("-"); }

// 16384 -> "16.4k", 45088768 -> "45.1M": a 7B layer's count fits a narrow column.
QString compactCount(qint64 n) {
    if (n < 10000) return QString::number(n);
    if (n < 10000000) return QString::number(double(n) / 1e3, 'f', n < 100000 ? 1 : 0) + QLatin1Char('k');
    return QString::number(double(n) / 1e6, 'f', n < 100000000 ? 1 : 0) + QLatin1Char('M');
}

// The items keep the exact values (the registry name, the parameter count: selection, constraints and tests
// read them); the tree draws them short ("3.down", "45.1M") so that Bits and Error fit in a 320 px dock.
// fitColumns sizes the columns to the same short texts.
class CompactDelegate : public QStyledItemDelegate {
public:
    using QStyledItemDelegate::QStyledItemDelegate;

protected:
    void initStyleOption(QStyleOptionViewItem* option, const QModelIndex& index) const override {
        QStyledItemDelegate::initStyleOption(option, index);
        const bool layer = index.siblingAtColumn(ModelPanel::NameCol).data(kIndexRole).toInt() >= 0;
        if (!layer) return;
        if (index.column() == ModelPanel::NameCol) option->text = shortLayerName(option->text.toStdString());
        else if (index.column() == ModelPanel::ParamsCol) option->text = compactCount(option->text.toLongLong());
    }
};
}  // namespace

ModelPanel::ModelPanel(WorkbenchSession* session, QWidget* parent) : QWidget(parent), session_(session) {
    setAcceptDrops(true);
    auto* open = new QPushButton(tr("&Open model..."), this);
    open->setToolTip(tr("Open a Hugging Face model directory (config.json, *.safetensors, tokenizer). "
                        "You can also drop a directory here."));
    connect(open, &QPushButton::clicked, this, &ModelPanel::browse);
    recentButton_ = new QToolButton(this);
    recentButton_->setText(tr("Recent"));
    recentButton_->setPopupMode(QToolButton::InstantPopup);
    recentMenu_ = new QMenu(recentButton_);
    recentButton_->setMenu(recentMenu_);
    summary_ = new QLabel(tr("No model. Open a Hugging Face model directory or drop one here."), this);
    summary_->setWordWrap(true);

    kindCombo_ = new QComboBox(this);
    kindCombo_->addItem(tr("Select kind..."));
    for (const char* k : kKinds) kindCombo_->addItem(QString::fromLatin1(k));
    kindCombo_->setToolTip(tr("Select every layer of one kind (q, k, v, o projections, MLP gate/up/down, lm_head)"));
    connect(kindCombo_, &QComboBox::activated, this, [this](int i) {
        if (i > 0) selectKind(kindCombo_->itemText(i));
        kindCombo_->setCurrentIndex(0);
    });
    filterMode_ = new QComboBox(this);
    filterMode_->addItems({tr("glob"), tr("regex")});
    filterMode_->setToolTip(tr("glob: shell patterns, comma-separated (model.layers.*.mlp.*); regex: ECMAScript, searched in each name"));
    filter_ = new QLineEdit(this);
    filter_->setPlaceholderText(tr("Select layers: model.layers.*.self_attn.*"));
    filter_->setClearButtonEnabled(true);
    connect(filter_, &QLineEdit::returnPressed, this,
            [this] { selectByFilter(filter_->text(), filterMode_->currentIndex() == 1); });
    groupCombo_ = new QComboBox(this);
    groupCombo_->addItem(tr("by block"));
    groupCombo_->addItem(tr("by kind"));
    groupCombo_->setToolTip(tr("Group the layers under their transformer block, or under their kind (every q, "
                               "every down, ...); clicking a group selects its layers"));
    connect(groupCombo_, qOverload<int>(&QComboBox::activated), this, [this](int i) { setGroupByKind(i == 1); });
    filterMessage_ = new QLabel(this);
    filterMessage_->setWordWrap(true);
    filterMessage_->setForegroundRole(QPalette::PlaceholderText);

    tree_ = new QTreeWidget(this);
    tree_->setColumnCount(ColumnCount);
    tree_->setHeaderLabels({tr("Layer"), tr("Kind"), tr("Shape"), tr("Params"), tr("Bits"), tr("Error"), tr("Constraint")});
    auto* header = tree_->headerItem();
    header->setToolTip(ShapeCol, tr("out_features x in_features of the weight"));
    header->setToolTip(ParamsCol, tr("Weights in the layer"));
    header->setToolTip(BitsCol, tr("Total bits per weight of the layer's quantized form: codes plus scales, codebooks and other side data"));
    header->setToolTip(ErrorCol, tr("Relative weight error ||W - W'||_F / ||W||_F of the quantized layer (0 = exact). "
                                    "The tooltip of each value adds SQNR and the output error on calibration rows."));
    header->setToolTip(ConstraintCol, tr("Allocation constraints set from the context menu: a pinned setting or a bits range"));
    tree_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    tree_->setContextMenuPolicy(Qt::CustomContextMenu);
    tree_->setUniformRowHeights(true);
    tree_->setItemDelegate(new CompactDelegate(tree_));
    // Short names make every column narrow; what the user looks for after quantizing (Bits, Error) comes
    // right after the name, and the kind is in the name ("3.down"), so its column is hidden. A narrower
    // dock scrolls sideways over the rest rather than eliding. fitColumns sizes the columns to their texts:
    // ResizeToContents would lay out every cell through the style, 20 ms for 224 layers.
    tree_->header()->setSectionResizeMode(QHeaderView::Interactive);
    tree_->header()->setStretchLastSection(true);
    tree_->header()->moveSection(tree_->header()->visualIndex(BitsCol), 1);
    tree_->header()->moveSection(tree_->header()->visualIndex(ErrorCol), 2);
    tree_->header()->moveSection(tree_->header()->visualIndex(ParamsCol), 3);
    tree_->setColumnHidden(KindCol, true);
    connect(tree_, &QTreeWidget::customContextMenuRequested, this, &ModelPanel::showContextMenu);
    connect(tree_, &QTreeWidget::itemSelectionChanged, this, [this] {
        // Selecting a block selects its layers.
        const QSignalBlocker block(tree_);
        for (auto* item : tree_->selectedItems())
            if (item->data(NameCol, kIndexRole).toInt() < 0)
                for (int c = 0; c < item->childCount(); ++c) item->child(c)->setSelected(true);
        showSelectionCount();
        emit selectionChanged();
    });

    auto* top = new QHBoxLayout;
    top->addWidget(open);
    top->addWidget(recentButton_);
    top->addStretch();
    top->addWidget(new QLabel(tr("Group:"), this));
    top->addWidget(groupCombo_);
    auto* select = new QHBoxLayout;
    select->addWidget(kindCombo_);
    select->addWidget(filterMode_);
    select->addWidget(filter_, 1);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(summary_);
    layout->addLayout(select);
    layout->addWidget(filterMessage_);
    layout->addWidget(tree_, 1);

    connect(session_, &WorkbenchSession::modelLoaded, this, &ModelPanel::rebuild);
    connect(session_, &WorkbenchSession::quantized, this, &ModelPanel::refreshMeasures);
    connect(session_, &WorkbenchSession::constraintsChanged, this, &ModelPanel::refreshMeasures);
    refreshRecent();
}

void ModelPanel::browse() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open model directory"));
    if (!dir.isEmpty()) emit openRequested(dir);
}

void ModelPanel::refreshRecent() {
    recentMenu_->clear();
    const QStringList recent = AppSettings::recentModels();
    for (const QString& dir : recent)
        recentMenu_->addAction(dir, this, [this, dir] { emit openRequested(dir); });
    recentButton_->setEnabled(!recent.isEmpty());
}

void ModelPanel::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void ModelPanel::dropEvent(QDropEvent* event) {
    if (handleDrop(event->mimeData())) event->acceptProposedAction();
}

bool ModelPanel::handleDrop(const QMimeData* mime) {
    const auto urls = mime->urls();
    if (urls.isEmpty() || !urls.first().isLocalFile()) return false;
    QString path = urls.first().toLocalFile();
    // A dropped config.json or safetensors file means its directory.
    if (QFileInfo(path).isFile()) path = QFileInfo(path).absolutePath();
    emit openRequested(path);
    return true;
}

void ModelPanel::rebuild() {
    summary_->setText(session_->modelDir() + QLatin1Char('\n') + session_->modelSummary());
    filterMessage_->clear();
    regroup();
    emit selectionChanged();
}

void ModelPanel::setGroupByKind(bool byKind) {
    if (byKind == byKind_ && groupCombo_->currentIndex() == int(byKind)) return;
    byKind_ = byKind;
    groupCombo_->setCurrentIndex(byKind ? 1 : 0);
    const auto selected = selectedLayers();
    regroup();
    setSelectedLayers(selected);
}

void ModelPanel::regroup() {
    const QSignalBlocker block(tree_);
    tree_->clear();
    layerItems_.clear();
    const auto& layers = session_->layers().all();
    // Groups in block order, or in the order of kinds in a block (q, k, v, o, gate, up, down, lm_head).
    std::map<int, QTreeWidgetItem*> groups;
    std::map<int, QString> titles;
    for (const auto& l : layers) {
        const int key = byKind_ ? int(l.kind) : (l.block >= 0 ? l.block : std::numeric_limits<int>::max());
        titles[key] = byKind_ ? QString::fromLatin1(quench::layer_kind_name(l.kind))
                      : l.block >= 0 ? tr("block %1").arg(l.block) : tr("output");
    }
    // Built detached and inserted at once: one model reset instead of a row insertion per item.
    QList<QTreeWidgetItem*> top;
    for (const auto& [key, title] : titles) {
        auto* group = new QTreeWidgetItem;
        group->setText(NameCol, title);
        group->setData(NameCol, kIndexRole, -1);
        groups[key] = group;
        top << group;
    }
    layerItems_.resize(layers.size(), nullptr);
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto& l = layers[i];
        const int key = byKind_ ? int(l.kind) : (l.block >= 0 ? l.block : std::numeric_limits<int>::max());
        auto* item = new QTreeWidgetItem(groups[key]);
        const QString name = QString::fromStdString(l.name);
        item->setText(NameCol, name);  // drawn short by the delegate
        item->setToolTip(NameCol, name);
        item->setText(KindCol, QString::fromLatin1(quench::layer_kind_name(l.kind)));
        item->setText(ShapeCol, QStringLiteral("%1 x %2").arg(l.out_features).arg(l.in_features));
        item->setText(ParamsCol, QString::number(l.params()));
        item->setToolTip(ParamsCol, tr("%1 weights: %2 at 16 bits each")
                                        .arg(QLocale().toString(qint64(l.params())), formatBytes(double(l.params()) * 2)));
        item->setTextAlignment(ParamsCol, Qt::AlignRight | Qt::AlignVCenter);
        item->setData(NameCol, kIndexRole, int(i));
        layerItems_[i] = item;
    }
    tree_->addTopLevelItems(top);
    for (QTreeWidgetItem* group : top) group->setExpanded(true);
    refreshMeasures();
}

void ModelPanel::fitColumns() {
    const QFontMetrics fm(tree_->font());
    const int pad = 2 * (tree_->style()->pixelMetric(QStyle::PM_FocusFrameHMargin, nullptr, tree_) + 1) + 6;
    const QFontMetrics headerFm(tree_->header()->font());
    for (int col : {int(NameCol), int(BitsCol), int(ErrorCol), int(ParamsCol), int(ShapeCol)}) {
        int width = headerFm.horizontalAdvance(tree_->headerItem()->text(col)) + pad + 6;
        for (int g = 0; g < tree_->topLevelItemCount(); ++g) {
            const QTreeWidgetItem* group = tree_->topLevelItem(g);
            if (col == NameCol) width = std::max(width, tree_->indentation() + fm.horizontalAdvance(group->text(NameCol)) + pad);
            for (int c = 0; c < group->childCount(); ++c) {
                QString text = group->child(c)->text(col);
                if (col == NameCol) text = shortLayerName(text.toStdString());
                else if (col == ParamsCol) text = compactCount(text.toLongLong());
                width = std::max(width, fm.horizontalAdvance(text) + pad + (col == NameCol ? 2 * tree_->indentation() : 0));
            }
        }
        tree_->setColumnWidth(col, width);
    }
}

void ModelPanel::refreshMeasures() {
    const auto outcomes = session_->layerOutcomes();
    const auto& c = session_->constraints();
    for (std::size_t i = 0; i < layerItems_.size(); ++i) {
        auto* item = layerItems_[i];
        auto it = outcomes.find(i);
        if (it == outcomes.end()) {
            item->setText(BitsCol, {});
            item->setText(ErrorCol, {});
            item->setToolTip(ErrorCol, {});
        } else {
            const auto& o = it->second;
            item->setText(BitsCol, bitsText(o.bitsPerWeight));
            item->setText(ErrorCol, QString::number(o.relError, 'g', 4));
            item->setToolTip(BitsCol, o.spec);
            item->setToolTip(ErrorCol, tr("%1\nrelative weight error %2\nSQNR %3 dB\noutput error on calibration rows %4")
                                           .arg(o.spec)
                                           .arg(o.relError, 0, 'g', 4)
                                           .arg(o.sqnrDb, 0, 'f', 2)
                                           .arg(o.outputRelError < 0 ? tr("not measured (no calibration text)")
                                                                     : QString::number(o.outputRelError, 'g', 4)));
        }
        const std::string name = item->text(NameCol).toStdString();
        QString constraint;
        if (auto p = c.pins.find(name); p != c.pins.end())
            constraint = tr("pinned %1").arg(QString::fromStdString(p->second));
        if (auto r = c.layer_limits.find(name); r != c.layer_limits.end()) {
            if (!constraint.isEmpty()) constraint += QStringLiteral("; ");
            constraint += tr("bits %1..%2").arg(bitsText(r->second.min_bits_per_weight), bitsText(r->second.max_bits_per_weight));
        }
        item->setText(ConstraintCol, constraint);
    }
    fitColumns();
}

std::vector<std::size_t> ModelPanel::selectedLayers() const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < layerItems_.size(); ++i)
        if (layerItems_[i]->isSelected()) out.push_back(i);
    return out;
}

void ModelPanel::setSelectedLayers(const std::vector<std::size_t>& layers) {
    {
        // One selection change for all rows: item by item, 224 layers cost the view a repaint each.
        const QSignalBlocker block(tree_);
        QAbstractItemModel* model = tree_->model();
        QItemSelection selection;
        for (std::size_t i : layers) {
            if (i >= layerItems_.size()) continue;
            QTreeWidgetItem* item = layerItems_[i];
            const QModelIndex group = model->index(tree_->indexOfTopLevelItem(item->parent()), 0);
            const QModelIndex row = model->index(item->parent()->indexOfChild(item), 0, group);
            selection.select(row, row);
        }
        tree_->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    }
    showSelectionCount();
    emit selectionChanged();
}

void ModelPanel::showSelectionCount() {
    // Follows every change of the selection (clicks, kind, filter), so the count is never stale.
    const int n = int(selectedLayers().size());
    filterMessage_->setText(layerItems_.empty() ? QString()
                            : n == 0            ? tr("No layer selected")
                                                : tr("%n layer(s) selected", nullptr, n));
}

bool ModelPanel::selectByFilter(const QString& text, bool regex) {
    filter_->setText(text);
    filterMode_->setCurrentIndex(regex ? 1 : 0);
    try {
        const auto& reg = session_->layers();
        setSelectedLayers(regex ? reg.select_regex(text.toStdString()) : reg.select_glob(text.toStdString()));
        return true;
    } catch (const quench::Error& e) {
        filterMessage_->setText(QString::fromUtf8(e.what()));
        return false;
    }
}

void ModelPanel::selectKind(const QString& kind) {
    const auto k = quench::layer_kind_from_name(kind.toStdString());
    if (!k) return;
    setSelectedLayers(session_->layers().select_kind(*k));
    filterMessage_->setText(tr("%n layer(s) of kind %1", nullptr, int(selectedLayers().size())).arg(kind));
}

QString ModelPanel::filterMessage() const { return filterMessage_->text(); }

void ModelPanel::pinLayer(const QString& layer, const QString& spec) {
    session_->constraints().pins[layer.toStdString()] = spec.toStdString();
    emit session_->constraintsChanged();
}

void ModelPanel::setLayerBitsRange(const QString& layer, double minBits, double maxBits) {
    session_->constraints().layer_limits[layer.toStdString()] = {minBits, maxBits};
    emit session_->constraintsChanged();
}

void ModelPanel::clearConstraints(const QString& layer) {
    session_->constraints().pins.erase(layer.toStdString());
    session_->constraints().layer_limits.erase(layer.toStdString());
    emit session_->constraintsChanged();
}

QTreeWidgetItem* ModelPanel::itemOf(std::size_t layer) const {
    return layer < layerItems_.size() ? layerItems_[layer] : nullptr;
}

void ModelPanel::showContextMenu(const QPoint& pos) {
    QTreeWidgetItem* item = tree_->itemAt(pos);
    if (!item || item->data(NameCol, kIndexRole).toInt() < 0) return;
    const QString layer = item->text(NameCol);
    QMenu menu(this);
    // Pins must name a measured candidate of the layer (the allocator chooses among those).
    QMenu* pin = menu.addMenu(tr("Pin setting"));
    pin->setToolTip(tr("The allocator must give this layer this setting"));
    const QStringList measured = session_->measuredSpecs(layer);
    for (const QString& spec : measured) pin->addAction(spec, this, [this, layer, spec] { pinLayer(layer, spec); });
    if (currentSpec_ && !currentSpec_().isEmpty()) {
        const QString spec = currentSpec_();
        if (!measured.contains(spec)) {
            if (!measured.isEmpty()) pin->addSeparator();
            pin->addAction(tr("Current method: %1").arg(spec), this, [this, layer, spec] { pinLayer(layer, spec); });
        }
    }
    menu.addAction(tr("Minimum bits per weight..."), this, [this, layer] {
        bool ok = false;
        const double v = QInputDialog::getDouble(this, tr("Minimum bits"), tr("Fewest bits per weight for %1").arg(layer),
                                                 3, 0, 32, 3, &ok);
        if (!ok) return;
        const auto& lim = session_->constraints().layer_limits;
        const auto it = lim.find(layer.toStdString());
        setLayerBitsRange(layer, v, it != lim.end() ? it->second.max_bits_per_weight : std::numeric_limits<double>::infinity());
    });
    menu.addAction(tr("Maximum bits per weight..."), this, [this, layer] {
        bool ok = false;
        const double v = QInputDialog::getDouble(this, tr("Maximum bits"), tr("Most bits per weight for %1").arg(layer),
                                                 8, 0, 32, 3, &ok);
        if (!ok) return;
        const auto& lim = session_->constraints().layer_limits;
        const auto it = lim.find(layer.toStdString());
        setLayerBitsRange(layer, it != lim.end() ? it->second.min_bits_per_weight : 0.0, v);
    });
    menu.addAction(tr("Clear constraints"), this, [this, layer] { clearConstraints(layer); });
    menu.exec(tree_->viewport()->mapToGlobal(pos));
}

}  // namespace quench::gui
