#pragma once
// The texts a run reads and the preview of its calibration windows: File → Choose Calibration
// Text (Ctrl+Shift+T) and Choose Evaluation Text (Ctrl+T), text files dropped on the window,
// and the Calibration view's preview — the windows a run would draw, tokenized beside the engine
// jobs on a pool of its own (tokenization only, no model), debounced by the view and restarted
// when the settings change while one is being made. GUI thread only.

#include "engine_jobs.h"

#include <QObject>
#include <QPointer>
#include <QString>
#include <QThreadPool>

namespace sparselab::gui {

class MainWindow;
class Workbench;

class CalibrationController : public QObject {
    Q_OBJECT

public:
    // `window` shows what the controller does; `session` holds the tokenizer.
    CalibrationController(MainWindow* window, Workbench& session);
    ~CalibrationController() override; // stop()

    void chooseEvaluationTextDialog();
    void chooseCalibrationTextDialog();
    // The views take the text (made absolute); the Evaluation view's change is announced by
    // evaluationTextChosen, the Calibration view's by its own settingsChanged.
    void setEvaluationText(const QString& path);
    void setCalibrationText(const QString& path);

    // Makes the preview of the Calibration view's settings now (nothing without a model). A
    // preview being made is cancelled and made again.
    void refreshPreview();
    // Cancels a preview being made and waits for it (closing).
    void stop();

Q_SIGNALS:
    void evaluationTextChosen(const QString& path);
    void previewed(const sparselab::gui::CalibrationPreviewJob::Result& result);

private:
    MainWindow* m_window;
    Workbench& m_session;
    QThreadPool m_pool; // previews only, one at a time
    QPointer<CalibrationPreviewJob> m_previewJob;
    bool m_previewAgain = false;
};

} // namespace sparselab::gui
