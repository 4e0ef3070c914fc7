#include "token_preview_widget.h"

#include <QEvent>
#include <QLocale>

namespace sparselab::widgets {

namespace {

QColor blend(const QColor& a, const QColor& b, double t)
{
    return QColor::fromRgbF(float(a.redF() + (b.redF() - a.redF()) * t), float(a.greenF() + (b.greenF() - a.greenF()) * t),
                            float(a.blueF() + (b.blueF() - a.blueF()) * t));
}

// A token's text as HTML that keeps every character visible: spaces stay (pre-wrap), a
// line break shows as ↵ before breaking, a tab as →.
QString pieceHtml(const QString& piece)
{
    QString out;
    for (const QChar c : piece) {
        if (c == QLatin1Char('\n'))
            out += QStringLiteral("↵<br>");
        else if (c == QLatin1Char('\t'))
            out += QStringLiteral("→");
        else if (c == QLatin1Char('\r'))
            continue;
        else
            out += QString(c).toHtmlEscaped();
    }
    return out.isEmpty() ? QStringLiteral("∅") : out;
}

} // namespace

TokenPreviewWidget::TokenPreviewWidget(QWidget* parent)
    : QTextBrowser(parent)
{
    setOpenLinks(false);
    setReadOnly(true);
    setPlaceholderText(tr("Sampled calibration windows appear here."));
}

QColor TokenPreviewWidget::tokenShade(int which) const
{
    const QPalette& pal = palette();
    return blend(pal.color(QPalette::Base), pal.color(QPalette::Highlight), which % 2 == 0 ? 0.12 : 0.42);
}

void TokenPreviewWidget::setWindows(const QList<TokenWindowPreview>& windows)
{
    m_windows = windows;
    render();
}

void TokenPreviewWidget::clearWindows()
{
    m_windows.clear();
    clear();
}

void TokenPreviewWidget::render()
{
    if (m_windows.isEmpty()) {
        clear();
        return;
    }
    const QString shade[2] = {tokenShade(0).name(), tokenShade(1).name()};
    const QString muted = palette().color(QPalette::PlaceholderText).name();
    const QString text = palette().color(QPalette::Text).name();
    QString html;
    html.reserve(64 * 1024);
    for (const TokenWindowPreview& w : m_windows) {
        html += QStringLiteral("<p style='margin-top:6px; margin-bottom:2px; color:%1'><b>%2</b> · %3</p>")
                    .arg(muted, tr("Window %1").arg(w.index + 1),
                         tr("tokens %1–%2").arg(QLocale().toString(w.offset), QLocale().toString(w.offset + w.length - 1)));
        html += QStringLiteral("<p style='white-space:pre-wrap; margin-top:0px; color:%1'>").arg(text);
        for (int i = 0; i < w.pieces.size(); ++i) {
            html += QStringLiteral("<span style='background-color:%1'>%2</span>").arg(shade[i % 2], pieceHtml(w.pieces[i]));
        }
        if (w.length > w.pieces.size())
            html += QStringLiteral("<span style='color:%1'> … %2</span>")
                        .arg(muted, tr("(%1 more tokens)").arg(QLocale().toString(w.length - w.pieces.size())));
        html += QStringLiteral("</p>");
    }
    setHtml(html);
}

void TokenPreviewWidget::changeEvent(QEvent* event)
{
    if (event->type() == QEvent::PaletteChange)
        render();
    QTextBrowser::changeEvent(event);
}

} // namespace sparselab::widgets
