#pragma once
// The "Plan" dock: every linear layer with its method, sparsity or N:M pattern and bits
// (PlanModel in a table with editing delegates), bulk edits of the selected rows, presets,
// the model-wide totals the plan implies, load/save as the recipe JSON the CLI reads, and
// whether the run recovers after pruning (distillation from the dense model, off by default).
//
// Editing a cell while several rows are selected applies the value to all of them.
// Loading and saving go through the window's actions (Ctrl+L, Ctrl+S) so menus, shortcuts
// and buttons stay in step; the panel only edits the model.
// GUI thread only.

#include "model_summary.h"
#include "plan_model.h"

#include <QWidget>

class QAction;
class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QGroupBox;
class QLabel;
class QPushButton;
class QSpinBox;
class QTableView;

namespace sparselab::gui {

class PlanPanel : public QWidget {
    Q_OBJECT

public:
    enum Preset { UniformPreset, EndsDensePreset, AttentionMlpPreset };

    explicit PlanPanel(QWidget* parent = nullptr);

    void setActions(QAction* load, QAction* save);

    // New rows for a model: every linear layer with `setting`.
    void setModel(const widgets::ModelSummary& summary, const LayerSetting& setting);
    [[nodiscard]] PlanModel* planModel() const { return m_model; }
    [[nodiscard]] QTableView* tableView() const { return m_table; }

    // The edit bar's setting (method, sparsity/pattern, bits) on top of `base`.
    [[nodiscard]] LayerSetting editBarSetting(const LayerSetting& base = {}) const;
    void setEditBarSetting(const LayerSetting& setting);
    // Applies the edit bar to the selected rows (all rows when none is selected).
    void applyEditBarToSelection();
    void applyEditBarToAll();
    void applyPreset(Preset preset);
    void setPresetSplit(double attention, double mlp);

    // Whether saved recipes get one complete rule per layer.
    [[nodiscard]] bool exactRules() const;
    void setExactRules(bool exact);

    [[nodiscard]] QString totalsText() const;
    void setEditable(bool editable);

    // The "Recovery after pruning" section under the table (off by default).
    [[nodiscard]] RecoverySettings recoverySettings() const;
    void setRecoverySettings(const RecoverySettings& settings);
    [[nodiscard]] QGroupBox* recoveryBox() const { return m_recovery; }

    [[nodiscard]] static QList<PlanRow> rowsFor(const widgets::ModelSummary& summary, const LayerSetting& setting);

Q_SIGNALS:
    void exactRulesChanged(bool exact);
    void recoveryChanged();

private:
    void updateTotals();
    void updatePresetControls();
    [[nodiscard]] QList<int> selectedRows() const;

    PlanModel* m_model = nullptr;
    QTableView* m_table = nullptr;
    QComboBox* m_method = nullptr;
    QDoubleSpinBox* m_sparsity = nullptr;
    QComboBox* m_pattern = nullptr;
    QComboBox* m_bits = nullptr;
    QComboBox* m_grid = nullptr;
    QPushButton* m_applySelected = nullptr;
    QPushButton* m_applyAll = nullptr;
    QComboBox* m_preset = nullptr;
    QDoubleSpinBox* m_attention = nullptr;
    QDoubleSpinBox* m_mlp = nullptr;
    QPushButton* m_applyPreset = nullptr;
    QLabel* m_totals = nullptr;
    QPushButton* m_load = nullptr;
    QPushButton* m_save = nullptr;
    QCheckBox* m_exact = nullptr;
    QGroupBox* m_recovery = nullptr;
    QSpinBox* m_recoverySteps = nullptr;
    QComboBox* m_recoveryLoss = nullptr;
    QDoubleSpinBox* m_recoveryRate = nullptr;
};

} // namespace sparselab::gui
