#pragma once
// A read-only, timestamped log of what the application did: one line per message, errors
// in the palette's error colour, capped in length so a long session stays cheap.
//
// Usage:
//     auto* log = new LogView;
//     log->appendMessage(LogView::Info, tr("Loaded %1").arg(name));
//
// GUI thread only.

#include <QPlainTextEdit>

namespace sparselab::widgets {

class LogView : public QPlainTextEdit {
    Q_OBJECT

public:
    enum Level { Info, Warning, Error };

    explicit LogView(QWidget* parent = nullptr);

    // Lines kept before the oldest are dropped (default 5000).
    void setMaximumLines(int lines) { setMaximumBlockCount(lines); }
    // The plain text of the last message (without timestamp), empty when none.
    [[nodiscard]] const QString& lastMessage() const { return m_last; }

public Q_SLOTS:
    void appendMessage(sparselab::widgets::LogView::Level level, const QString& text);
    void appendInfo(const QString& text) { appendMessage(Info, text); }
    void appendWarning(const QString& text) { appendMessage(Warning, text); }
    void appendError(const QString& text) { appendMessage(Error, text); }

private:
    QString m_last;
};

} // namespace sparselab::widgets
