#pragma once
// The Model panel: open an HF model directory (button, recent list, drag and drop), the layer tree (block
// -> layer, or kind -> layer) with short names ("3.down", the full name in the tooltip), bits, error,
// parameters and shape, selection by click, by kind and by glob/regex filter with a count that follows the
// selection, and per-layer constraints (pin, min/max bits) from the context menu.
#include <QStringList>
#include <QWidget>

#include <functional>
#include <vector>

class QComboBox;
class QLabel;
class QLineEdit;
class QMenu;
class QMimeData;
class QToolButton;
class QTreeWidget;
class QTreeWidgetItem;

namespace quench::gui {

class WorkbenchSession;

class ModelPanel : public QWidget {
    Q_OBJECT

public:
    // Columns of the layer tree.
    enum Column { NameCol = 0, KindCol, ShapeCol, ParamsCol, BitsCol, ErrorCol, ConstraintCol, ColumnCount };

    explicit ModelPanel(WorkbenchSession* session, QWidget* parent = nullptr);

    QTreeWidget* tree() const { return tree_; }
    std::vector<std::size_t> selectedLayers() const;  // registry indices, in registry order
    void setSelectedLayers(const std::vector<std::size_t>& layers);
    // Selects by filter text as the filter field does: glob (comma-separated) or, with regex, an ECMAScript
    // regex. Returns false and shows core's message under the field when nothing matches or the pattern is bad.
    bool selectByFilter(const QString& text, bool regex);
    void selectKind(const QString& kind);  // "q", "k", ..., "lm_head"
    // Under the filter field: the selection count ("3 layer(s) selected"), kept current on every selection
    // change, or the filter's error.
    QString filterMessage() const;
    // Groups the tree by kind (every q, then every k, ...) instead of by block; the selection is kept.
    void setGroupByKind(bool byKind);
    bool groupsByKind() const { return byKind_; }

    // Constraints (what the context menu does), by layer name.
    void pinLayer(const QString& layer, const QString& spec);
    void setLayerBitsRange(const QString& layer, double minBits, double maxBits);
    void clearConstraints(const QString& layer);
    // The spec "Pin to current method" uses; the main window passes the method panel's spec.
    void setCurrentSpecProvider(std::function<QString()> provider) { currentSpec_ = std::move(provider); }

    void refreshRecent();
    // What a drop does: a dropped directory (or a file in it) is opened. False when nothing usable was dropped.
    bool handleDrop(const QMimeData* mime);

signals:
    void openRequested(const QString& dir);
    void selectionChanged();

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void rebuild();          // new model: the whole tree
    void regroup();          // the tree's items under their groups (block or kind)
    void showSelectionCount();
    void fitColumns();       // each column as wide as its widest text as drawn
    void refreshMeasures();  // new results or constraints: bits, error and constraint columns
    void showContextMenu(const QPoint& pos);
    void browse();
    QTreeWidgetItem* itemOf(std::size_t layer) const;

    WorkbenchSession* session_;
    QLabel* summary_;
    QToolButton* recentButton_;
    QMenu* recentMenu_;
    QComboBox* groupCombo_;
    QComboBox* kindCombo_;
    QComboBox* filterMode_;
    QLineEdit* filter_;
    QLabel* filterMessage_;
    QTreeWidget* tree_;
    std::vector<QTreeWidgetItem*> layerItems_;  // by registry index
    std::function<QString()> currentSpec_;
    bool byKind_ = false;
};

}  // namespace quench::gui
