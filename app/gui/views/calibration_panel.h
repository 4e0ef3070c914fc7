#pragma once
// The "Calibration" dock: which text calibrates the run and how it is windowed (number of
// windows, window length, seed), and a preview of the windows a run will draw — token
// boundaries shaded, counts, and a warning when the text is too short or repeats.
//
// The panel holds settings and shows what the window's CalibrationPreviewJob found; it runs
// nothing itself. previewRequested() fires (debounced) whenever a setting changes.
// GUI thread only.

#include "engine_jobs.h"
#include "session_types.h"

#include <QWidget>

class QAction;
class QLabel;
class QLineEdit;
class QSpinBox;
class QTimer;
class QToolButton;

namespace sparselab::widgets { class TokenPreviewWidget; }

namespace sparselab::gui {

class CalibrationPanel : public QWidget {
    Q_OBJECT

public:
    explicit CalibrationPanel(QWidget* parent = nullptr);

    void setChooseAction(QAction* chooseText);

    [[nodiscard]] CalibrationSettings settings() const;
    void setSettings(const CalibrationSettings& settings);
    void setTextPath(const QString& path);
    void setNsamples(qint64 windows);
    void setSeqlen(qint64 tokens);
    void setSeed(quint64 seed);
    // Bounds the window length by the model's context (0 = no model).
    void setModelContext(qint64 maxPositions);
    void setEditable(bool editable);

    void showPreview(const CalibrationPreviewJob::Result& result);
    void showPreviewError(const QString& message);
    void clearPreview();

    [[nodiscard]] QString countsText() const;
    [[nodiscard]] QString warningText() const;
    [[nodiscard]] bool warningVisible() const;
    [[nodiscard]] widgets::TokenPreviewWidget* preview() const { return m_preview; }

Q_SIGNALS:
    void settingsChanged();
    // Settings changed and have been stable for a moment: time to refresh the preview.
    void previewRequested();

private:
    void onChanged();
    void showWarning(const QString& text);

    QLineEdit* m_textPath = nullptr;
    QToolButton* m_browse = nullptr;
    QSpinBox* m_nsamples = nullptr;
    QSpinBox* m_seqlen = nullptr;
    QSpinBox* m_seed = nullptr;
    QLabel* m_counts = nullptr;
    QLabel* m_warningIcon = nullptr;
    QLabel* m_warning = nullptr;
    QWidget* m_warningRow = nullptr;
    widgets::TokenPreviewWidget* m_preview = nullptr;
    QTimer* m_debounce = nullptr;
    bool m_restoring = false;
};

} // namespace sparselab::gui
