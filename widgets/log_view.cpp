#include "log_view.h"

#include <QFontDatabase>
#include <QScrollBar>
#include <QTime>

namespace sparselab::widgets {

LogView::LogView(QWidget* parent)
    : QPlainTextEdit(parent)
{
    setReadOnly(true);
    setUndoRedoEnabled(false);
    setLineWrapMode(QPlainTextEdit::NoWrap);
    setMaximumBlockCount(5000);
    setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    setPlaceholderText(tr("Messages appear here."));
}

void LogView::appendMessage(Level level, const QString& text)
{
    m_last = text;
    const QString stamp = QTime::currentTime().toString(QStringLiteral("HH:mm:ss"));
    QString color;
    QString prefix;
    switch (level) {
    case Info:
        break;
    case Warning:
        color = QStringLiteral("#b36b00");
        prefix = tr("Warning: ");
        break;
    case Error:
        color = QStringLiteral("#c62828");
        prefix = tr("Error: ");
        break;
    }
    QString body = (prefix + text).toHtmlEscaped();
    if (!color.isEmpty())
        body = QStringLiteral("<span style='color:%1'>%2</span>").arg(color, body);
    const bool atEnd = verticalScrollBar()->value() == verticalScrollBar()->maximum();
    appendHtml(QStringLiteral("<span style='color:gray'>%1</span>&nbsp;&nbsp;%2").arg(stamp, body));
    if (atEnd)
        verticalScrollBar()->setValue(verticalScrollBar()->maximum());
}

} // namespace sparselab::widgets
