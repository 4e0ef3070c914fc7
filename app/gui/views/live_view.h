#pragma once
// The "Live Solver" dock: while a run prunes, the heat-map of the layer being solved (pruned
// entries appearing block by block) above the per-layer reconstruction-error bars filling in
// as layers finish (log axis). Fed by RunJob's heatmapFrame / layerFinished signals.
// GUI thread only.

#include "run_types.h"

#include <QHash>
#include <QWidget>

class QLabel;

namespace sparselab::widgets {
class LayerErrorPlot;
class MaskHeatmapWidget;
struct HeatmapFrame;
} // namespace sparselab::widgets

namespace sparselab::gui {

class LiveView : public QWidget {
    Q_OBJECT

public:
    explicit LiveView(QWidget* parent = nullptr);

    // A run starts: one bar position per layer of `plan`, all empty.
    void startRun(const QList<PlanRow>& plan, const QString& runName);
    void showFrame(const widgets::HeatmapFrame& frame);
    void addLayer(const LayerRunRow& row);
    void clear();

    [[nodiscard]] widgets::MaskHeatmapWidget* heatmap() const { return m_heatmap; }
    [[nodiscard]] widgets::LayerErrorPlot* errorPlot() const { return m_plot; }
    [[nodiscard]] int layersShown() const { return m_layersShown; }

    // Axis labels for a list of layers: "0.q" … for small models, block starts for large ones.
    static void layerLabels(const QList<PlanRow>& plan, QStringList* names, QStringList* ticks);

private:
    widgets::MaskHeatmapWidget* m_heatmap = nullptr;
    widgets::LayerErrorPlot* m_plot = nullptr;
    QLabel* m_caption = nullptr;
    QHash<QString, int> m_index; // module name → bar position
    int m_layersShown = 0;
};

} // namespace sparselab::gui
