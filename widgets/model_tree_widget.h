#pragma once
// The architecture of a loaded model: a header with its dimensions, tokenizer and totals,
// and a tree of decoder blocks → prunable linear layers (shape, parameters, dtype), plus
// the tensors that are never pruned (embeddings, norms, head). A filter box narrows the
// tree by layer name. Shows a placeholder when no model is loaded.
//
// Usage:
//     auto* tree = new ModelTreeWidget;
//     tree->setSummary(summary);          // plain values, see model_summary.h
//     tree->model()->rowCount();          // blocks + one "other parameters" row
//
// GUI thread only.

#include "model_summary.h"

#include <QHash>
#include <QWidget>

class QAbstractItemModel;
class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QStackedWidget;
class QStandardItemModel;
class QTreeView;

namespace sparselab::widgets {

class ModelTreeWidget : public QWidget {
    Q_OBJECT

public:
    // Columns of model().
    // SparsityColumn: fraction of exact zeros per linear layer after a run ("" before any run).
    enum Column { NameColumn, ShapeColumn, ParametersColumn, DtypeColumn, SparsityColumn, ColumnCount };
    // Item data roles on the NameColumn item of every row.
    enum Role {
        NodeTypeRole = Qt::UserRole + 1, // NodeType
        TensorNameRole,                  // QString: checkpoint tensor name (layers, tensors)
        KindRole,                        // QString: e.g. "self_attn.q_proj" (layers)
        RowsRole,                        // qint64: output features (layers)
        ColsRole,                        // qint64: input features (layers)
        ParametersRole,                  // qint64
        BlockRole,                       // int: block index (blocks, layers)
        SparsityRole,                    // double: current sparsity in [0, 1] (layers, blocks) or invalid
    };
    enum NodeType { BlockNode = 1, LinearNode, OtherGroupNode, TensorNode };

    explicit ModelTreeWidget(QWidget* parent = nullptr);
    ~ModelTreeWidget() override;

    void setSummary(const ModelSummary& summary);
    void clear();
    // Current sparsity per linear layer, by checkpoint tensor name ("…down_proj.weight") or
    // module name ("…down_proj"); blocks show the parameter-weighted mean. `caption` says
    // where the numbers come from (e.g. the run's name), shown in the column's tooltip.
    void setLayerSparsity(const QHash<QString, double>& sparsity, const QString& caption = {});
    void clearLayerSparsity();
    [[nodiscard]] const QHash<QString, double>& layerSparsity() const { return m_sparsity; }
    [[nodiscard]] const ModelSummary& summary() const { return m_summary; }

    // The unfiltered source model (rows: blocks, then the "other parameters" group).
    [[nodiscard]] QAbstractItemModel* model() const;
    [[nodiscard]] QTreeView* treeView() const { return m_tree; }

    // Text shown while no model is loaded.
    void setPlaceholderText(const QString& text);

Q_SIGNALS:
    // A linear layer or tensor was double-clicked / activated (checkpoint tensor name).
    void tensorActivated(const QString& tensorName);

private:
    void rebuild();
    void updateHeader();

    void updateSparsityColumn();

    ModelSummary m_summary;
    QHash<QString, double> m_sparsity; // by module name
    QString m_sparsityCaption;
    QStackedWidget* m_stack = nullptr;
    QLabel* m_placeholder = nullptr;
    QLabel* m_title = nullptr;
    QLabel* m_subtitle = nullptr;
    QLabel* m_details = nullptr;
    QLineEdit* m_filter = nullptr;
    QTreeView* m_tree = nullptr;
    QStandardItemModel* m_model = nullptr;
    QSortFilterProxyModel* m_proxy = nullptr;
};

} // namespace sparselab::widgets
