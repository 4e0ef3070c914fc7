#include "matrix_view.h"

#include <QHelpEvent>
#include <QPainter>
#include <QToolTip>

#include <algorithm>
#include <array>
#include <cmath>

namespace sparselab::widgets {

namespace {

constexpr int kTitleHeight = 18;
constexpr int kLegendHeight = 16;
constexpr int kMargin = 4;

QColor lerp(const QColor& a, const QColor& b, double t)
{
    return QColor::fromRgbF(float(a.redF() + (b.redF() - a.redF()) * t), float(a.greenF() + (b.greenF() - a.greenF()) * t),
                            float(a.blueF() + (b.blueF() - a.blueF()) * t));
}

} // namespace

MatrixView::MatrixView(QWidget* parent) : QWidget(parent)
{
    setMouseTracking(true);
    setAttribute(Qt::WA_OpaquePaintEvent, false);
}

QColor MatrixView::divergingColor(double t)
{
    // ColorBrewer RdBu ends, white in the middle: sign is the hue, magnitude the saturation.
    static const QColor negative(33, 102, 172);
    static const QColor positive(178, 24, 43);
    t = std::clamp(t, -1.0, 1.0);
    return t < 0 ? lerp(Qt::white, negative, -t) : lerp(Qt::white, positive, t);
}

QColor MatrixView::viridisColor(double t)
{
    static const std::array<QColor, 5> stops{QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140),
                                             QColor(94, 201, 98), QColor(253, 231, 37)};
    t = std::clamp(t, 0.0, 1.0) * double(stops.size() - 1);
    const auto i = std::min<size_t>(size_t(t), stops.size() - 2);
    return lerp(stops[i], stops[i + 1], t - double(i));
}

QColor MatrixView::markedColor() { return QColor(40, 40, 40); }

void MatrixView::setFrame(const MatrixFrame& frame)
{
    m_frame = frame.isValid() ? frame : MatrixFrame{};
    rebuildImage();
    update();
}

void MatrixView::clear()
{
    m_frame = MatrixFrame{};
    m_image = QImage();
    update();
}

void MatrixView::setPlaceholderText(const QString& text)
{
    m_placeholder = text;
    update();
}

void MatrixView::rebuildImage()
{
    if (!m_frame.isValid()) {
        m_image = QImage();
        return;
    }
    float maxAbs = m_frame.scaleMax;
    if (maxAbs <= 0.0f) {
        for (float v : m_frame.values)
            if (std::isfinite(v))
                maxAbs = std::max(maxAbs, std::fabs(v));
    }
    m_max = maxAbs > 0.0f ? maxAbs : 1.0f;
    m_image = QImage(m_frame.cols, m_frame.rows, QImage::Format_RGB32);
    for (int r = 0; r < m_frame.rows; ++r) {
        auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(r));
        for (int c = 0; c < m_frame.cols; ++c) {
            const qsizetype k = qsizetype(r) * m_frame.cols + c;
            if (!m_frame.marked.isEmpty() && m_frame.marked[k]) {
                line[c] = markedColor().rgb();
                continue;
            }
            const double v = double(m_frame.values[k]) / double(m_max);
            line[c] = (m_frame.signedScale ? divergingColor(v) : viridisColor(v)).rgb();
        }
    }
}

QRect MatrixView::matrixRect() const
{
    const QRect area = rect().adjusted(kMargin, kMargin + kTitleHeight, -kMargin, -kMargin - kLegendHeight);
    if (!m_frame.isValid() || area.width() <= 0 || area.height() <= 0)
        return {};
    // Square cells when they fit, else fill the area.
    const double cell = std::min(double(area.width()) / m_frame.cols, double(area.height()) / m_frame.rows);
    const int w = std::max(1, int(cell * m_frame.cols));
    const int h = std::max(1, int(cell * m_frame.rows));
    return {area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h};
}

bool MatrixView::cellAt(const QPoint& pos, int* row, int* col) const
{
    const QRect m = matrixRect();
    if (m.isEmpty() || !m.contains(pos))
        return false;
    *col = std::clamp(int(double(pos.x() - m.x()) * m_frame.cols / m.width()), 0, m_frame.cols - 1);
    *row = std::clamp(int(double(pos.y() - m.y()) * m_frame.rows / m.height()), 0, m_frame.rows - 1);
    return true;
}

void MatrixView::paintEvent(QPaintEvent*)
{
    QPainter p(this);
    p.fillRect(rect(), palette().base());
    p.setPen(palette().color(QPalette::Text));
    QFont bold = font();
    bold.setBold(true);
    p.setFont(bold);
    const QString title = m_frame.isValid() ? m_frame.title : m_placeholder;
    p.drawText(QRect(kMargin, kMargin, width() - 2 * kMargin, kTitleHeight), Qt::AlignLeft | Qt::AlignVCenter,
               title);
    p.setFont(font());
    const QRect m = matrixRect();
    if (m.isEmpty() || m_image.isNull())
        return;
    p.drawImage(m, m_image);
    const double cw = double(m.width()) / m_frame.cols;
    const double ch = double(m.height()) / m_frame.rows;
    auto columnsRect = [&](int begin, int end) {
        return QRectF(m.x() + begin * cw, m.y(), (end - begin) * cw, m.height());
    };
    p.setBrush(Qt::NoBrush);
    if (m_frame.spanBegin >= 0 && m_frame.spanEnd > m_frame.spanBegin) {
        p.setPen(QPen(palette().color(QPalette::Highlight), 2));
        p.drawRect(columnsRect(m_frame.spanBegin, m_frame.spanEnd));
    }
    if (m_frame.highlightColumn >= 0 && m_frame.highlightColumn < m_frame.cols) {
        p.setPen(QPen(QColor(255, 140, 0), 2));
        p.drawRect(columnsRect(m_frame.highlightColumn, m_frame.highlightColumn + 1));
    }
    if (m_frame.highlightRow >= 0 && m_frame.highlightRow < m_frame.rows) {
        p.setPen(QPen(QColor(0, 160, 60), 1.5, Qt::DashLine));
        p.drawRect(QRectF(m.x(), m.y() + m_frame.highlightRow * ch, m.width(), ch));
    }
    // Legend: the scale's ends and the marked colour.
    const QRect legend(m.x(), m.bottom() + 3, std::max(m.width(), 220), kLegendHeight - 2);
    p.setPen(palette().color(QPalette::Text));
    const QString lo = m_frame.signedScale ? QString::number(-double(m_max), 'g', 3) : QStringLiteral("0");
    const QString hi = QString::number(double(m_max), 'g', 3);
    const int barW = 60;
    QLinearGradient g(legend.x() + 40, 0, legend.x() + 40 + barW, 0);
    for (int k = 0; k <= 8; ++k) {
        const double t = k / 8.0;
        g.setColorAt(t, m_frame.signedScale ? divergingColor(2 * t - 1) : viridisColor(t));
    }
    p.drawText(QRect(legend.x(), legend.y(), 38, legend.height()), Qt::AlignRight | Qt::AlignVCenter, lo);
    p.fillRect(QRect(legend.x() + 40, legend.y() + 3, barW, legend.height() - 6), g);
    p.drawText(QRect(legend.x() + 44 + barW, legend.y(), 50, legend.height()), Qt::AlignLeft | Qt::AlignVCenter, hi);
    if (!m_frame.marked.isEmpty()) {
        p.fillRect(QRect(legend.x() + 100 + barW, legend.y() + 3, 10, legend.height() - 6), markedColor());
        p.drawText(QRect(legend.x() + 114 + barW, legend.y(), 60, legend.height()), Qt::AlignLeft | Qt::AlignVCenter,
                   tr("pruned"));
    }
}

bool MatrixView::event(QEvent* event)
{
    if (event->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(event);
        int r = 0, c = 0;
        if (cellAt(help->pos(), &r, &c)) {
            const qsizetype k = qsizetype(r) * m_frame.cols + c;
            QString text = tr("row %1, column %2: %3").arg(r).arg(c + m_frame.columnOffset).arg(double(m_frame.values[k]), 0, 'g', 6);
            if (!m_frame.marked.isEmpty() && m_frame.marked[k])
                text += tr(" (pruned)");
            QToolTip::showText(help->globalPos(), text, this);
        } else {
            QToolTip::hideText();
        }
        return true;
    }
    return QWidget::event(event);
}

} // namespace sparselab::widgets
