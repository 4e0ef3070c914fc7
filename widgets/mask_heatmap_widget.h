#pragma once
// A live picture of one weight matrix while it is pruned: |w| on a perceptual colour scale
// (viridis), pruned entries in a distinct colour, the solver's block boundary as a line.
// Rows (outputs) run down, columns (inputs) across — the direction the solver sweeps.
//
// The widget takes plain frames (below), produced on a worker thread by the application
// (app/gui/jobs/engine_jobs.cpp downsamples the weight to at most ~256 × 256 cells and posts the
// frame through a queued signal). Painting only scales a cached QImage: setFrame() builds
// the image once (O(cells)), so frames can arrive at ~10–40 Hz without stalling the GUI.
//
// Usage:
//     auto* heatmap = new MaskHeatmapWidget;
//     heatmap->setFrame(frame);     // HeatmapFrame from the run job
//
// GUI thread only. Colours: the heat-map scale is fixed (it encodes data); everything
// around it (text, frame, boundary line) uses palette roles.

#include <QImage>
#include <QMetaType>
#include <QString>
#include <QVector>
#include <QWidget>

namespace sparselab::widgets {

// One downsampled snapshot of a weight matrix [rows, cols] = [out, in].
struct HeatmapFrame {
    QString layer;             // module name, e.g. "model.layers.3.mlp.down_proj"
    qint64 rows = 0;           // full matrix height (outputs)
    qint64 cols = 0;           // full matrix width (inputs)
    int height = 0;            // cells down, 1..rows (rows when rows <= the cap)
    int width = 0;             // cells across, 1..cols
    QVector<float> magnitude;  // [height * width], row-major: mean |w| over the cell's kept entries (0 if none)
    QVector<float> pruned;     // [height * width]: fraction in [0, 1] of the cell's entries pruned
    qint64 colsFinal = 0;      // columns [0, colsFinal) are final; the solver is past them
    qint64 blocksDone = 0;     // solver column blocks finished …
    qint64 blocksTotal = 0;    // … of this many (0 = not started / no block structure)
    double prunedFraction = 0; // over the whole matrix (exact, not from the cells)

    [[nodiscard]] bool isValid() const
    {
        return height > 0 && width > 0 && magnitude.size() == qsizetype(height) * width
            && pruned.size() == magnitude.size();
    }
};

class MaskHeatmapWidget : public QWidget {
    Q_OBJECT

public:
    explicit MaskHeatmapWidget(QWidget* parent = nullptr);

    void setFrame(const HeatmapFrame& frame);
    void clear();
    [[nodiscard]] const HeatmapFrame& frame() const { return m_frame; }
    // The rendered cells (one pixel per cell); null when there is no frame.
    [[nodiscard]] const QImage& image() const { return m_image; }
    // Text shown when there is no frame.
    void setPlaceholderText(const QString& text);

    // The colour scale: t in [0, 1] → viridis; pruned entries.
    [[nodiscard]] static QColor scaleColor(double t);
    [[nodiscard]] static QColor prunedColor();

    // Where the cells are painted: each cell an integer number of pixels wide and high
    // (nearest-neighbour zoom, so a pruned weight is a crisp block), cells at most twice as
    // wide as high or the other way round; scaled down only when even one pixel per cell
    // does not fit. Empty when there is no frame.
    [[nodiscard]] QRect matrixArea() const;
    // Smallest matrix area the layout is asked for: kMinPixelsPerCell per cell of a
    // kReadableCells × kReadableCells matrix (the demo's 64 × 64 attention projections).
    static constexpr int kMinPixelsPerCell = 2;
    static constexpr int kReadableCells = 64;

    [[nodiscard]] QSize sizeHint() const override;
    [[nodiscard]] QSize minimumSizeHint() const override;

protected:
    void paintEvent(QPaintEvent* event) override;
    void changeEvent(QEvent* event) override;

private:
    void rebuildImage();

    HeatmapFrame m_frame;
    QImage m_image;
    QString m_placeholder;
    double m_scaleMax = 0.0; // |w| mapped to the top of the scale (per layer, robust max)
    QString m_scaleLayer;    // layer m_scaleMax was taken from
};

} // namespace sparselab::widgets

Q_DECLARE_METATYPE(sparselab::widgets::HeatmapFrame)
