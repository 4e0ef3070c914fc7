#pragma once
// The "Export" dock: which run is exported (the one selected in Results), the format (a
// Hugging Face folder, or one GGUF file for llama.cpp as F32 / F16 / Q8_0 / Q4_0; remembered
// in QSettings "export/format"), the output folder or file
// with a live overwrite guard (it must not exist, nor lie inside the model folder), the
// Export button (Ctrl+Shift+E), progress, and a summary of what was written (files, bytes,
// layers replaced). MainWindow runs the ExportJob; the panel holds settings and shows state.
// GUI thread only.

#include "engine_jobs.h"

#include <QWidget>

class QAction;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QToolButton;

namespace sparselab::gui {

class ExportPanel : public QWidget {
    Q_OBJECT

public:
    explicit ExportPanel(QWidget* parent = nullptr);

    void setActions(QAction* exportAction, QAction* chooseFolder);

    // The run to export (nullptr = none); `modelFolder` is the source the guard checks against.
    void setRun(const RunRecord* run, const QString& modelFolder);
    [[nodiscard]] QString outDir() const;  // the folder, or the .gguf file
    // "" = Hugging Face folder; else the GGUF tensor type ("f32", "f16", "q8_0", "q4_0").
    [[nodiscard]] QString ggufType() const;
    void setGgufType(const QString& type);
    void setOutDir(const QString& folder);
    // "" when the folder may be written, else why not (shown under the folder).
    [[nodiscard]] QString guardText() const;
    [[nodiscard]] bool canExport() const;

    void setRunning(bool running);
    void setProgress(qint64 done, qint64 total, const QString& text);
    void showSummary(const ExportJob::Result& result);
    void showStatus(const QString& text);
    // Forgets the last export's outcome (its summary and status line), e.g. when the runs change.
    void clearStatus();
    [[nodiscard]] QString summaryText() const;
    [[nodiscard]] QString statusText() const;

Q_SIGNALS:
    void outDirChanged(const QString& folder);
    // canExport() may have changed.
    void readinessChanged();

private:
    void updateGuard();

    QLabel* m_run = nullptr;
    QComboBox* m_format = nullptr;
    QLineEdit* m_outDir = nullptr;
    QToolButton* m_browse = nullptr;
    QLabel* m_guard = nullptr;
    QPushButton* m_export = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_summary = nullptr;
    QListWidget* m_files = nullptr;
    QString m_modelFolder;
    bool m_hasRun = false;
    bool m_modelKept = false;
    QString m_guardText;
};

} // namespace sparselab::gui
