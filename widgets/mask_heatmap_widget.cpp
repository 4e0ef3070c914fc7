#include "mask_heatmap_widget.h"

#include <QEvent>
#include <QFontMetrics>
#include <QLinearGradient>
#include <QPainter>

#include <algorithm>
#include <array>
#include <cmath>

namespace sparselab::widgets {

namespace {

// Viridis (matplotlib), 9 stops: perceptually uniform, readable in grey and by most colour-blind
// viewers, and the same on light and dark palettes (it encodes data, not chrome).
constexpr std::array<std::array<int, 3>, 9> kViridis = {{{68, 1, 84},
                                                         {71, 44, 122},
                                                         {59, 81, 139},
                                                         {44, 113, 142},
                                                         {33, 144, 141},
                                                         {39, 173, 129},
                                                         {92, 200, 99},
                                                         {170, 220, 50},
                                                         {253, 231, 37}}};

// Gamma on |w|: weights are concentrated near zero, so a square root spreads the colours.
constexpr double kGamma = 0.5;

QColor mix(const QColor& a, const QColor& b, double t)
{
    return QColor::fromRgbF(float(a.redF() + (b.redF() - a.redF()) * t), float(a.greenF() + (b.greenF() - a.greenF()) * t),
                            float(a.blueF() + (b.blueF() - a.blueF()) * t));
}

} // namespace

MaskHeatmapWidget::MaskHeatmapWidget(QWidget* parent)
    : QWidget(parent), m_placeholder(tr("The weight matrix of the layer being solved appears here."))
{
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    setToolTip(tr("Magnitude |w| of the layer's weights (dark = small, yellow = large); pruned weights in white.\n"
                  "Columns left of the line are final; the solver works left to right in blocks."));
}

QColor MaskHeatmapWidget::scaleColor(double t)
{
    t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
    const double x = t * double(kViridis.size() - 1);
    const int i = std::min(int(x), int(kViridis.size()) - 2);
    const double f = x - i;
    const auto& a = kViridis[size_t(i)];
    const auto& b = kViridis[size_t(i) + 1];
    return QColor(int(std::lround(a[0] + (b[0] - a[0]) * f)), int(std::lround(a[1] + (b[1] - a[1]) * f)),
                  int(std::lround(a[2] + (b[2] - a[2]) * f)));
}

// Pruned weights are holes in the matrix: white, outside the viridis range.
QColor MaskHeatmapWidget::prunedColor() { return QColor(255, 255, 255); }

QSize MaskHeatmapWidget::sizeHint() const
{
    const int em = fontMetrics().height();
    return {em * 22, em * 18};
}

QSize MaskHeatmapWidget::minimumSizeHint() const
{
    // Title (2.5 lines) and legend (2 lines) around a matrix of kReadableCells² cells at
    // kMinPixelsPerCell each.
    const int em = fontMetrics().height();
    const int matrix = kReadableCells * kMinPixelsPerCell;
    return {std::max(em * 10, matrix + em), matrix + em * 9 / 2 + 2};
}

void MaskHeatmapWidget::setPlaceholderText(const QString& text)
{
    m_placeholder = text;
    update();
}

void MaskHeatmapWidget::clear()
{
    m_frame = HeatmapFrame{};
    m_image = QImage();
    m_scaleLayer.clear();
    m_scaleMax = 0.0;
    update();
}

void MaskHeatmapWidget::setFrame(const HeatmapFrame& frame)
{
    if (!frame.isValid()) {
        clear();
        return;
    }
    m_frame = frame;
    if (m_scaleLayer != frame.layer || !(m_scaleMax > 0.0)) {
        // A robust maximum (99th percentile of the cells), fixed for the whole layer so colours
        // do not shift while blocks are pruned.
        std::vector<float> values(frame.magnitude.begin(), frame.magnitude.end());
        values.erase(std::remove_if(values.begin(), values.end(), [](float v) { return !(v > 0.0f); }), values.end());
        if (!values.empty()) {
            const size_t k = std::min(values.size() - 1, size_t(double(values.size()) * 0.99));
            std::nth_element(values.begin(), values.begin() + std::ptrdiff_t(k), values.end());
            m_scaleMax = values[k];
            m_scaleLayer = frame.layer;
        }
    }
    rebuildImage();
    update();
}

void MaskHeatmapWidget::rebuildImage()
{
    m_image = QImage(m_frame.width, m_frame.height, QImage::Format_RGB32);
    const QColor pruned = prunedColor();
    const double scale = m_scaleMax > 0.0 ? 1.0 / m_scaleMax : 0.0;
    for (int y = 0; y < m_frame.height; ++y) {
        auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(y));
        for (int x = 0; x < m_frame.width; ++x) {
            const qsizetype i = qsizetype(y) * m_frame.width + x;
            const double t = std::pow(std::min(1.0, double(m_frame.magnitude[i]) * scale), kGamma);
            const double p = std::clamp(double(m_frame.pruned[i]), 0.0, 1.0);
            line[x] = (p > 0.0 ? mix(scaleColor(t), pruned, p) : scaleColor(t)).rgb();
        }
    }
}

QRect MaskHeatmapWidget::matrixArea() const
{
    const QFontMetrics fm(font());
    const int line = fm.height();
    const QRect area = rect().adjusted(line / 2, 2 * line + line / 2, -line / 2, -(2 * line));
    if (area.width() <= 4 || area.height() <= 4 || m_frame.height <= 0 || m_frame.width <= 0)
        return {};
    const int cellsAcross = m_frame.width, cellsDown = m_frame.height;
    int zoomX = area.width() / cellsAcross;
    int zoomY = area.height() / cellsDown;
    int w = 0, h = 0;
    if (zoomX >= 1 && zoomY >= 1) {
        // Integer zoom per axis, cells no more than 2:1 in either direction.
        zoomX = std::min(zoomX, 2 * zoomY);
        zoomY = std::min(zoomY, 2 * zoomX);
        w = cellsAcross * zoomX;
        h = cellsDown * zoomY;
    } else {
        // Not even a pixel per cell: fit, keeping the aspect (at most 1:4) so the matrix stays visible.
        const double aspect = std::clamp(double(cellsAcross) / double(cellsDown), 0.25, 4.0);
        w = area.width();
        h = int(std::lround(w / aspect));
        if (h > area.height()) {
            h = area.height();
            w = int(std::lround(h * aspect));
        }
    }
    return {area.left() + (area.width() - w) / 2, area.top() + (area.height() - h) / 2, w, h};
}

void MaskHeatmapWidget::paintEvent(QPaintEvent*)
{
    QPainter p(this);
    const QPalette& pal = palette();
    p.fillRect(rect(), pal.window());
    const QFontMetrics fm(font());
    const int line = fm.height();

    if (m_image.isNull()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(rect().adjusted(line, line, -line, -line), Qt::AlignCenter | Qt::TextWordWrap, m_placeholder);
        return;
    }

    // Title: the layer, then shape, block progress and the pruned share.
    QFont bold = font();
    bold.setBold(true);
    p.setFont(bold);
    p.setPen(pal.color(QPalette::WindowText));
    const QRect titleRect(line / 2, line / 4, width() - line, line);
    p.drawText(titleRect, Qt::AlignLeft | Qt::AlignVCenter,
               QFontMetrics(bold).elidedText(m_frame.layer, Qt::ElideMiddle, titleRect.width()));
    p.setFont(font());
    QString sub = tr("%1 × %2").arg(m_frame.rows).arg(m_frame.cols);
    if (m_frame.height != m_frame.rows || m_frame.width != m_frame.cols)
        sub += tr(" (shown as %1 × %2 cells)").arg(m_frame.height).arg(m_frame.width);
    if (m_frame.blocksTotal > 0)
        sub += tr(" · block %1 of %2").arg(m_frame.blocksDone).arg(m_frame.blocksTotal);
    sub += tr(" · %1 % pruned").arg(100.0 * m_frame.prunedFraction, 0, 'f', 1);
    p.setPen(pal.color(QPalette::PlaceholderText));
    p.drawText(QRect(line / 2, line + line / 4, width() - line, line), Qt::AlignLeft | Qt::AlignVCenter,
               fm.elidedText(sub, Qt::ElideRight, width() - line));

    const QRect target = matrixArea();
    if (target.isEmpty())
        return;
    // Nearest-neighbour scaling keeps every cell a crisp rectangle.
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    p.drawImage(target, m_image);
    p.setPen(QPen(pal.color(QPalette::Mid), 1));
    p.drawRect(target.adjusted(0, 0, -1, -1));

    if (m_frame.colsFinal > 0 && m_frame.colsFinal < m_frame.cols) {
        const int x = target.left() + int(std::lround(double(target.width()) * double(m_frame.colsFinal) / double(m_frame.cols)));
        p.setPen(QPen(pal.color(QPalette::Highlight), std::max(2, line / 8)));
        p.drawLine(x, target.top() - line / 4, x, target.bottom() + line / 4);
    }

    // Legend: the |w| scale and the pruned colour.
    const int legendTop = height() - line - line / 2;
    const int barWidth = std::min(width() / 3, line * 8);
    QLinearGradient gradient(QPointF(line / 2, 0), QPointF(line / 2 + barWidth, 0));
    for (int i = 0; i <= 8; ++i)
        gradient.setColorAt(i / 8.0, scaleColor(i / 8.0));
    p.setPen(pal.color(QPalette::WindowText));
    const QString small = tr("|w| small");
    const int smallWidth = fm.horizontalAdvance(small);
    p.drawText(QRect(line / 2, legendTop, smallWidth, line), Qt::AlignVCenter, small);
    const QRect bar(line / 2 + smallWidth + line / 3, legendTop + line / 5, barWidth, line - 2 * (line / 5));
    gradient.setStart(bar.left(), 0);
    gradient.setFinalStop(bar.right(), 0);
    p.fillRect(bar, gradient);
    int x = bar.right() + line / 3;
    const QString large = tr("large");
    p.drawText(QRect(x, legendTop, fm.horizontalAdvance(large) + 2, line), Qt::AlignVCenter, large);
    x += fm.horizontalAdvance(large) + line;
    p.fillRect(QRect(x, bar.top(), bar.height(), bar.height()), prunedColor());
    p.setPen(QPen(pal.color(QPalette::Mid), 1));
    p.drawRect(QRect(x, bar.top(), bar.height() - 1, bar.height() - 1));
    p.setPen(pal.color(QPalette::WindowText));
    x += bar.height() + line / 3;
    const QString prunedText = tr("pruned");
    p.drawText(QRect(x, legendTop, fm.horizontalAdvance(prunedText) + 2, line), Qt::AlignVCenter, prunedText);
    x += fm.horizontalAdvance(prunedText) + line;
    if (m_frame.colsFinal > 0 && m_frame.colsFinal < m_frame.cols) {
        p.setPen(QPen(pal.color(QPalette::Highlight), std::max(2, line / 8)));
        p.drawLine(x + line / 4, bar.top(), x + line / 4, bar.bottom());
        p.setPen(pal.color(QPalette::WindowText));
        const QString solver = tr("solver position");
        p.drawText(QRect(x + line / 2 + 2, legendTop, fm.horizontalAdvance(solver) + 2, line), Qt::AlignVCenter, solver);
    }
}

void MaskHeatmapWidget::changeEvent(QEvent* event)
{
    if (event->type() == QEvent::PaletteChange || event->type() == QEvent::FontChange)
        update();
    QWidget::changeEvent(event);
}

} // namespace sparselab::widgets
