#pragma once
// Calibration windows as the model sees them: each window's start offset and its first
// tokens, one span per token with alternating background shades so token boundaries show
// (spaces and line breaks inside a token are kept visible).
//
// Shades come from the palette (Base blended towards Highlight), so they work on light and
// dark styles. The widget takes plain data; the application decodes the pieces on a worker.
//
// Usage:
//     auto* preview = new TokenPreviewWidget;
//     preview->setWindows(windows);      // QList<TokenWindowPreview>
//
// GUI thread only.

#include <QList>
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <QTextBrowser>

namespace sparselab::widgets {

struct TokenWindowPreview {
    qint64 index = 0;       // window number (0-based)
    qint64 offset = 0;      // first token's position in the tokenized text
    qint64 length = 0;      // tokens in the window (seqlen)
    QList<qint32> ids;      // the first ids.size() tokens' ids (may be fewer than length)
    QStringList pieces;     // their decoded text, one per id
};

class TokenPreviewWidget : public QTextBrowser {
    Q_OBJECT

public:
    explicit TokenPreviewWidget(QWidget* parent = nullptr);

    void setWindows(const QList<TokenWindowPreview>& windows);
    [[nodiscard]] const QList<TokenWindowPreview>& windows() const { return m_windows; }
    void clearWindows();
    // The two alternating token backgrounds for the current palette.
    [[nodiscard]] QColor tokenShade(int which) const;

protected:
    void changeEvent(QEvent* event) override;

private:
    void render();

    QList<TokenWindowPreview> m_windows;
};

} // namespace sparselab::widgets
