#pragma once
// The "Evaluation" dock: which text, how it is windowed, the Evaluate / Cancel buttons, the
// progress of a running evaluation (bar, ETA) and the last perplexity.
//
// The panel only holds settings and shows state; MainWindow runs the PerplexityJob. The
// buttons trigger the window's actions (so shortcuts, menus and buttons stay in step).
// GUI thread only.

#include <QWidget>

class QAction;
class QCheckBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QToolButton;

namespace sparselab::gui {

class EvaluationPanel : public QWidget {
    Q_OBJECT

public:
    explicit EvaluationPanel(QWidget* parent = nullptr);

    // The buttons trigger these actions and follow their enabled state.
    void setActions(QAction* evaluate, QAction* cancel, QAction* chooseText);

    [[nodiscard]] QString textPath() const;
    void setTextPath(const QString& path);
    // Windows evaluated by default: the first 32 windows of the text (8 192 tokens at 256),
    // about 7 s on the demo model instead of about 3 min for all of its 764 windows. "All
    // windows" is the check box beside the number.
    static constexpr qint64 kDefaultWindows = 32;

    // Tokens per window; 0 = Auto, the calibration window length (autoSeqlen()), as runs use.
    [[nodiscard]] qint64 seqlen() const;
    void setSeqlen(qint64 tokens);
    // What Auto stands for; the window's calibration length, shown in the box.
    void setAutoSeqlen(qint64 tokens);
    [[nodiscard]] qint64 autoSeqlen() const { return m_autoSeqlen; }
    // The window length an evaluation uses: seqlen(), or autoSeqlen() when that is Auto.
    [[nodiscard]] qint64 effectiveSeqlen() const;
    // Windows evaluated from the start of the text; 0 = all (the "All windows" box).
    [[nodiscard]] qint64 maxWindows() const;
    void setMaxWindows(qint64 windows);
    [[nodiscard]] QCheckBox* allWindowsBox() const { return m_allWindows; }
    // Windows per forward pass.
    [[nodiscard]] qint64 batchSize() const;
    void setBatchSize(qint64 windows);
    // Context length of the loaded model (0 = none loaded): bounds the window length.
    void setModelContext(qint64 maxPositions);

    // Running state: progress visible, settings locked.
    void setRunning(bool running);
    // done/total windows (total 0 = unknown), etaSeconds < 0 = unknown, text = current stage.
    void setProgress(qint64 done, qint64 total, double etaSeconds, const QString& text);
    void showResult(double perplexity, qint64 windows, qint64 seqlen, qint64 tokens, double seconds,
                    const QString& textName);
    // A one-line state under the result ("Cancelled.", "Failed: …").
    void showStatus(const QString& text);
    void clearResult();

    // What the result label shows (tests, accessibility).
    [[nodiscard]] QString resultText() const;
    [[nodiscard]] QString statusText() const;

    [[nodiscard]] static QString formatDuration(double seconds);

Q_SIGNALS:
    // The user changed a setting (persisted by the window).
    void settingsChanged();

private:
    void updateTextInfo();

    QLineEdit* m_textPath = nullptr;
    QToolButton* m_browse = nullptr;
    QLabel* m_textInfo = nullptr;
    QSpinBox* m_seqlen = nullptr;
    QSpinBox* m_maxWindows = nullptr;
    QCheckBox* m_allWindows = nullptr;
    QSpinBox* m_batchSize = nullptr;
    QPushButton* m_evaluate = nullptr;
    QPushButton* m_cancel = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_progressText = nullptr;
    QLabel* m_result = nullptr;
    QLabel* m_resultDetails = nullptr;
    QLabel* m_status = nullptr;
    qint64 m_modelContext = 0;
    qint64 m_autoSeqlen = 256;
};

} // namespace sparselab::gui
