#pragma once
// The "Live Solver" dock: while a run prunes, the heat-map of the layer being solved (pruned
// entries appearing block by block) above the per-layer reconstruction-error bars filling in
// as layers finish (log axis); when the run recovers after pruning, a third pane with the
// training loss and the held-out perplexity as recovery runs (and, for an allocation search,
// its best KL per generation). Fed by RunJob's heatmapFrame / layerFinished / recoveryStep /
// recoveryHeldOut signals and SearchJob's generationFinished.
// GUI thread only.

#include "session_types.h"

#include <QHash>
#include <QVector>
#include <QWidget>

class QLabel;
class QSplitter;

namespace sparselab::widgets {
class AllocationProfilePlot;
class LayerErrorPlot;
class MaskHeatmapWidget;
class TrainingCurvePlot;
struct HeatmapFrame;
struct ProfileLayer;
} // namespace sparselab::widgets

namespace sparselab::gui {

class LiveView : public QWidget {
    Q_OBJECT

public:
    explicit LiveView(QWidget* parent = nullptr);

    // A run starts: one bar position per layer of `plan`, all empty.
    void startRun(const QList<PlanRow>& plan, const QString& runName);
    void showFrame(const widgets::HeatmapFrame& frame);
    void addLayer(const solve::LayerRecord& row);
    // Recovery: shows the training-curve pane (x axis 0..steps) until the next startRun/clear.
    void startRecovery(qint64 steps, const QString& description);
    void addRecoveryStep(qint64 step, double loss);
    void addRecoveryHeldOut(qint64 step, double perplexity);
    // Allocation search (Run → Allocate…): the same curve pane, with the best
    // calibration KL per generation (x axis 0..generations), given most of the height.
    void startSearch(qint64 generations, const QString& description);
    void addSearchGeneration(qint64 generation, double kl);
    // The search's profile plot, beside its curve: the reference lines, then the best levels.
    void setSearchReference(double uniform, const QVector<double>& owlPerBlock);
    void setSearchProfile(const QVector<widgets::ProfileLayer>& layers);
    void clear();

    [[nodiscard]] widgets::MaskHeatmapWidget* heatmap() const { return m_heatmap; }
    [[nodiscard]] widgets::LayerErrorPlot* errorPlot() const { return m_plot; }
    [[nodiscard]] widgets::TrainingCurvePlot* recoveryPlot() const { return m_recoveryPlot; }
    [[nodiscard]] QWidget* recoveryPane() const { return m_recoveryPane; }
    [[nodiscard]] widgets::AllocationProfilePlot* profilePlot() const { return m_profilePlot; }
    [[nodiscard]] int layersShown() const { return m_layersShown; }

    // Axis labels for a list of layers: "0.q" … for small models, block starts for large ones.
    static void layerLabels(const QList<PlanRow>& plan, QStringList* names, QStringList* ticks);

private:
    widgets::MaskHeatmapWidget* m_heatmap = nullptr;
    widgets::LayerErrorPlot* m_plot = nullptr;
    QLabel* m_caption = nullptr;
    widgets::TrainingCurvePlot* m_recoveryPlot = nullptr;
    QLabel* m_recoveryCaption = nullptr;
    QWidget* m_recoveryPane = nullptr;
    widgets::AllocationProfilePlot* m_profilePlot = nullptr;
    QSplitter* m_splitter = nullptr;
    QHash<QString, int> m_index; // module name → bar position
    int m_layersShown = 0;
};

} // namespace sparselab::gui
