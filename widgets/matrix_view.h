#pragma once
// A small matrix drawn cell by cell, for the teaching view: signed values on a diverging
// scale (blue < 0 < red, white at 0) or non-negative values on viridis, marked (pruned)
// entries in a dark neutral colour, an outlined column span (the current block), one
// highlighted column and row, and a title. Hovering a cell shows its row, column and value.
//
// Frames are plain structs (no LibTorch). setFrame() rebuilds one cached QImage (one pixel per
// cell, O(rows·cols)); painting scales it, so large matrices stay cheap to draw (they are
// drawn at one pixel per cell, scaled down by the painter).
// Painting goes through QPainter only, so QWidget::render into an SVG or PDF painter works.
// GUI thread only.

#include <QImage>
#include <QString>
#include <QVector>
#include <QWidget>

namespace sparselab::widgets {

struct MatrixFrame {
    QString title;
    int rows = 0;
    int cols = 0;
    QVector<float> values;       // [rows * cols] row-major
    QVector<quint8> marked;      // empty, or [rows * cols]: 1 = pruned (drawn in markedColor)
    bool signedScale = true;     // diverging around 0 (weights, Hinv); false: viridis on [0, max]
    float scaleMax = 0.0f;       // |value| at the ends of the scale; 0 = the frame's max |value|
    int spanBegin = -1;          // outlined columns [spanBegin, spanEnd) (current block); -1 = none
    int spanEnd = -1;
    int highlightColumn = -1;    // outlined column (current step); -1 = none
    int highlightRow = -1;       // outlined row (the row the formula follows); -1 = none
    int columnOffset = 0;        // column labels start here (a block of a larger matrix)

    [[nodiscard]] bool isValid() const
    {
        return rows > 0 && cols > 0 && values.size() == qsizetype(rows) * cols
            && (marked.isEmpty() || marked.size() == values.size());
    }
};

class MatrixView : public QWidget {
    Q_OBJECT

public:
    explicit MatrixView(QWidget* parent = nullptr);

    void setFrame(const MatrixFrame& frame);
    void clear();
    [[nodiscard]] const MatrixFrame& frame() const { return m_frame; }
    [[nodiscard]] const QImage& image() const { return m_image; }
    void setPlaceholderText(const QString& text);

    [[nodiscard]] static QColor divergingColor(double t); // t in [−1, 1]
    [[nodiscard]] static QColor viridisColor(double t);   // t in [0, 1]
    [[nodiscard]] static QColor markedColor();

    // The matrix cell under a widget position; false outside the matrix.
    [[nodiscard]] bool cellAt(const QPoint& pos, int* row, int* col) const;

    [[nodiscard]] QSize sizeHint() const override { return {320, 200}; }
    [[nodiscard]] QSize minimumSizeHint() const override { return {120, 80}; }

protected:
    void paintEvent(QPaintEvent* event) override;
    bool event(QEvent* event) override;

private:
    [[nodiscard]] QRect matrixRect() const;
    void rebuildImage();

    MatrixFrame m_frame;
    QImage m_image;
    float m_max = 0.0f;
    QString m_placeholder;
};

} // namespace sparselab::widgets
