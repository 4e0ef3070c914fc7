#include "calibration_controller.h"

#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "log_view.h"
#include "main_window.h"
#include "resource_paths.h"
#include "workbench.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>

namespace sparselab::gui {

CalibrationController::CalibrationController(MainWindow* window, Workbench& session)
    : QObject(window), m_window(window), m_session(session)
{
    m_pool.setMaxThreadCount(1);
}

CalibrationController::~CalibrationController() { stop(); }

void CalibrationController::chooseEvaluationTextDialog()
{
    const QString current = m_window->evaluationPanel()->textPath();
    const QString start = current.isEmpty() ? QFileInfo(demoEvalText()).absolutePath() : current;
    const QString path = QFileDialog::getOpenFileName(m_window, tr("Choose Evaluation Text"), start,
                                                      tr("Text files (*.txt *.text *.md);;All files (*)"));
    if (!path.isEmpty())
        setEvaluationText(path);
}

void CalibrationController::chooseCalibrationTextDialog()
{
    const QString current = m_window->calibrationPanel()->settings().textPath;
    const QString start = current.isEmpty() ? QFileInfo(demoCalibText()).absolutePath() : current;
    const QString path = QFileDialog::getOpenFileName(m_window, tr("Choose Calibration Text"), start,
                                                      tr("Text files (*.txt *.text *.md);;All files (*)"));
    if (!path.isEmpty())
        setCalibrationText(path);
}

void CalibrationController::setEvaluationText(const QString& path)
{
    EvaluationPanel* panel = m_window->evaluationPanel();
    panel->setTextPath(QDir::cleanPath(QFileInfo(path).absoluteFilePath()));
    m_window->logView()->appendInfo(tr("Evaluation text: %1").arg(QDir::toNativeSeparators(panel->textPath())));
    Q_EMIT evaluationTextChosen(panel->textPath());
}

void CalibrationController::setCalibrationText(const QString& path)
{
    CalibrationPanel* panel = m_window->calibrationPanel();
    panel->setTextPath(QDir::cleanPath(QFileInfo(path).absoluteFilePath()));
    m_window->logView()->appendInfo(
        tr("Calibration text: %1").arg(QDir::toNativeSeparators(panel->settings().textPath)));
}

void CalibrationController::refreshPreview()
{
    if (!m_session.tokenizer())
        return;
    if (m_previewJob) {
        // One preview at a time: stop the stale one, start again when it has ended.
        m_previewAgain = true;
        m_previewJob->cancel();
        return;
    }
    CalibrationPanel* panel = m_window->calibrationPanel();
    const CalibrationSettings c = panel->settings();
    if (c.textPath.isEmpty() || !QFileInfo(c.textPath).isFile()) {
        panel->showPreviewError(c.textPath.isEmpty() ? tr("Choose a calibration text.")
                                                     : tr("%1: no such file").arg(QDir::toNativeSeparators(c.textPath)));
        return;
    }
    CalibrationPreviewJob::Params params;
    params.tokenizer = m_session.tokenizer();
    params.textPath = c.textPath;
    params.nsamples = c.nsamples;
    params.seqlen = c.seqlen;
    params.seed = c.seed;
    auto* job = new CalibrationPreviewJob(params, this);
    m_previewJob = job;
    auto done = [this, job] {
        job->deleteLater();
        m_previewJob = nullptr;
        if (m_previewAgain) {
            m_previewAgain = false;
            refreshPreview();
        }
    };
    connect(job, &CalibrationPreviewJob::finished, this, [this, done](const CalibrationPreviewJob::Result& r) {
        const bool stale = m_previewAgain;
        done();
        if (stale)
            return;
        m_window->calibrationPanel()->showPreview(r);
        Q_EMIT previewed(r);
    });
    connect(job, &CalibrationPreviewJob::failed, this, [this, done](const QString& message) {
        const bool stale = m_previewAgain;
        done();
        if (!stale)
            m_window->calibrationPanel()->showPreviewError(message);
    });
    connect(job, &CalibrationPreviewJob::cancelled, this, done);
    m_pool.start(job);
}

void CalibrationController::stop()
{
    if (m_previewJob)
        m_previewJob->cancel();
    m_pool.waitForDone();
}

} // namespace sparselab::gui
