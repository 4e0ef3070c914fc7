#pragma once
// The compression plan as a table: one row per linear layer of the loaded model, with its
// method (SparseGPT, magnitude, Wanda, dense), sparsity or N:M pattern and bit width.
//
// Edit roles (what delegates and setData use):
//   MethodColumn   int (PlanMethod)
//   SparsityColumn double, fraction in [0, 0.99] (unstructured rows only)
//   PatternColumn  QString: "" = unstructured, else "N:M" (e.g. "2:4")
//   BitsColumn     int: 2..8, or 16 = no quantization
//   GridColumn     QString, the quantization grid (quantized rows only): "row" or "g<N>"
//                  (group of N input columns), "sym" or "asym", and optionally "act"
//                  (act-order), "static" (static groups), "signed" (signed scale), "fp16"
//                  (fp16 scales), e.g.
//                  "g32 sym fp16" (exactly GGUF Q4_0 at 4 bits); see gridText/parseGrid
// Other columns are read-only. Dense rows are shown in italics and only their method edits.
// Bulk edits (setField over many rows) emit one dataChanged per contiguous range and one
// planChanged(). The model knows nothing of the engine; recipe_bridge.h converts it to and
// from the recipe JSON the CLI reads.
// GUI thread only.

#include "session_types.h"

#include <QAbstractTableModel>

namespace sparselab::gui {

class PlanModel : public QAbstractTableModel {
    Q_OBJECT

public:
    enum Column {
        BlockColumn,
        LayerColumn,
        ShapeColumn,
        MethodColumn,
        SparsityColumn,
        PatternColumn,
        BitsColumn,
        GridColumn,
        SizeColumn,
        ColumnCount
    };
    enum Role {
        NameRole = Qt::UserRole + 1, // QString: module name
        WeightsRole,                 // qint64: rows × cols
        TargetSparsityRole,          // double: fraction this row prunes
        DenseRole,                   // bool
    };

    // Model-wide figures implied by the plan.
    struct Totals {
        int layers = 0;
        int denseLayers = 0;
        qint64 weights = 0;          // in all linear layers
        qint64 prunedWeights = 0;    // expected zeros
        double averageSparsity = 0;  // prunedWeights / weights
        qint64 denseBytes = 0;       // all linear layers at fp16
        qint64 estimatedBytes = 0;   // at the chosen sparsity and bits (estimatedBytes())
    };

    explicit PlanModel(QObject* parent = nullptr);

    // Replaces all rows (e.g. a new model); resets the model.
    void setRows(const QList<PlanRow>& rows);
    [[nodiscard]] const QList<PlanRow>& rows() const { return m_rows; }
    [[nodiscard]] const PlanRow& rowAt(int row) const { return m_rows.at(row); }
    // Replaces every row's setting (same count and order as rows()), e.g. from a recipe.
    void setSettings(const QList<LayerSetting>& settings);
    // Sets one field on several rows (edit-role value, see above). False when the value is
    // invalid; rows where the field does not apply (e.g. sparsity of a dense row) are skipped.
    // The grid of a setting as GridColumn shows it, and parsed back into `s` (false, `s`
    // untouched, on unknown words or a group that is not a positive number).
    [[nodiscard]] static QString gridText(const LayerSetting& s);
    [[nodiscard]] static bool parseGrid(const QString& text, LayerSetting* s);
    bool setField(const QList<int>& rows, Column column, const QVariant& value);
    // Whole settings on several rows (all rows when `rows` is empty).
    void setSetting(const QList<int>& rows, const LayerSetting& setting);

    // Presets. Uniform: every layer gets `setting`. Ends dense: the first and last `blocks`
    // blocks become dense, others keep theirs. Attention vs MLP: attention projections get
    // `attention`, MLP layers `mlp` (unstructured sparsity; method and bits kept, dense rows
    // become `method`).
    void applyUniform(const LayerSetting& setting);
    void keepEndBlocksDense(int blocks = 1);
    void splitAttentionMlp(double attention, double mlp, PlanMethod method);

    [[nodiscard]] Totals totals() const;

    // QAbstractItemModel
    [[nodiscard]] int rowCount(const QModelIndex& parent = {}) const override;
    [[nodiscard]] int columnCount(const QModelIndex& parent = {}) const override;
    [[nodiscard]] QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    [[nodiscard]] QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
    [[nodiscard]] Qt::ItemFlags flags(const QModelIndex& index) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;

    // "N:M" → {N, M}; "" / "unstructured" → {0, 0}. False when malformed.
    static bool parsePattern(const QString& text, int* n, int* m);

Q_SIGNALS:
    // Any setting changed (edits, presets, recipe loads, new rows).
    void planChanged();

private:
    bool applyField(PlanRow& row, Column column, const QVariant& value) const;
    void emitRowsChanged(const QList<int>& rows);

    QList<PlanRow> m_rows;
};

} // namespace sparselab::gui
