#include "screenshot_driver.h"

#include "analysis_controller.h"
#include "sensitivity_panel.h"

#include "teaching_window.h"

#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "export_panel.h"
#include "live_view.h"
#include "mask_heatmap_widget.h"
#include "main_window.h"
#include "plan_panel.h"
#include "resource_paths.h"
#include "results_panel.h"
#include "training_curve_plot.h"

#include <QApplication>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QImage>
#include <QTabBar>
#include <QTableView>
#include <QTimer>

#include <cstdio>

namespace sparselab::gui {

namespace {

// SparseGPT last, so the live view shows its final layer.
const PlanMethod kMethods[] = {PlanMethod::Magnitude, PlanMethod::Wanda, PlanMethod::SparseGpt};

// Lets queued signals, replots and layouts settle before a grab.
void settle(int ms = 300)
{
    QElapsedTimer t;
    t.start();
    while (t.elapsed() < ms)
        QApplication::processEvents(QEventLoop::AllEvents, 50);
}

} // namespace

ScreenshotDriver::ScreenshotDriver(MainWindow* window, QString outDir, QObject* parent)
    : QObject(parent), m_window(window), m_outDir(std::move(outDir))
{
    m_window->setErrorHandler([this](const QString&, const QString& message) { fail(message); });
}

void ScreenshotDriver::start()
{
    if (!QDir().mkpath(m_outDir)) {
        fail(QStringLiteral("cannot create %1").arg(m_outDir));
        return;
    }
    auto begin = [this] {
        CalibrationSettings calib;
        calib.textPath = resourcesDir() + QStringLiteral("/text/tinystories_calib.txt");
        // The CLI example's 128 windows; SPARSELAB_SCREENSHOT_NSAMPLES makes quick checks quicker.
        calib.nsamples = qEnvironmentVariableIntValue("SPARSELAB_SCREENSHOT_NSAMPLES") > 0
            ? qEnvironmentVariableIntValue("SPARSELAB_SCREENSHOT_NSAMPLES")
            : 128;
        calib.seqlen = 256;
        calib.seed = 0;
        m_window->calibrationPanel()->setSettings(calib);
        m_window->evaluationPanel()->setTextPath(demoEvalText());
        m_window->evaluationPanel()->setSeqlen(256);
        m_window->evaluationPanel()->setMaxWindows(32);
        if (qEnvironmentVariable("SPARSELAB_SCREENSHOT_ONLY") == QLatin1String("teaching")) {
            captureTeaching(); // quick retakes of teaching.png alone
            return;
        }
        connect(m_window, &MainWindow::runFinished, this, [this](const RunRecord& r) {
            if (r.plan.value(0).setting.method == PlanMethod::SparseGpt)
                m_sparseGptRun = r.id;
            QTimer::singleShot(0, this, &ScreenshotDriver::nextRun);
        });
        connect(m_window, &MainWindow::runFailed, this, &ScreenshotDriver::fail);
        connect(m_window, &MainWindow::exportFinished, this, [this] { QTimer::singleShot(0, this, &ScreenshotDriver::capture); });
        nextRun();
    };
    if (m_window->hasModel() && !m_window->isBusy())
        begin();
    else
        connect(m_window, &MainWindow::modelLoaded, this, begin, Qt::SingleShotConnection);
    connect(m_window, &MainWindow::modelLoadFailed, this, &ScreenshotDriver::fail);
}

void ScreenshotDriver::startMidRun(const QString& name)
{
    if (!QDir().mkpath(m_outDir)) {
        fail(QStringLiteral("cannot create %1").arg(m_outDir));
        return;
    }
    auto begin = [this, name] {
        CalibrationSettings calib;
        calib.textPath = resourcesDir() + QStringLiteral("/text/tinystories_calib.txt");
        calib.nsamples = 128;
        calib.seqlen = 256;
        m_window->calibrationPanel()->setSettings(calib);
        m_window->evaluationPanel()->setTextPath(demoEvalText());
        LayerSetting s;
        s.method = PlanMethod::SparseGpt;
        s.sparsity = 0.5;
        m_window->planPanel()->setEditBarSetting(s);
        m_window->planPanel()->applyEditBarToAll();
        // SPARSELAB_SCREENSHOT_RECOVERY=1: the run recovers after pruning, and the picture is
        // taken half-way through the recovery (the training curve in the Live Solver).
        const bool recovery = qEnvironmentVariableIntValue("SPARSELAB_SCREENSHOT_RECOVERY") > 0;
        if (recovery) {
            RecoverySettings r;
            r.enabled = true;
            r.steps = 300;
            m_window->planPanel()->setRecoverySettings(r);
        }
        m_window->resetLayout();
        settle(300);
        connect(m_window, &MainWindow::runProgressed, this, [this, name, recovery](const RunProgress& p) {
            if (recovery) {
                if (m_midRunSaved || !p.recovering || m_window->liveView()->recoveryPlot()->lossPoints() < 40)
                    return;
                m_midRunSaved = true;
                QApplication::processEvents(QEventLoop::ExcludeUserInputEvents, 20);
                if (save(m_window, name))
                    m_window->cancelJob();
                return;
            }
            m_layersSolved = int(p.layerIndex);
            // A third of the layers solved (on the demo a layer takes milliseconds, so the frame
            // is usually a finished layer rather than one half-way).
            const widgets::HeatmapFrame& f = m_window->liveView()->heatmap()->frame();
            if (m_midRunSaved || p.layerCount == 0 || p.layerIndex * 3 < p.layerCount || !f.isValid())
                return;
            m_midRunSaved = true;
            QApplication::processEvents(QEventLoop::ExcludeUserInputEvents, 20);
            if (save(m_window, name)) {
                std::fprintf(stderr, "screenshots: mid-run at %.0f %% (%s)\n", 100.0 * p.overall, qPrintable(f.layer));
                m_window->cancelJob();
            }
        });
        connect(m_window, &MainWindow::runCancelled, this, [] { QApplication::exit(0); });
        connect(m_window, &MainWindow::runFinished, this, [this] { fail(QStringLiteral("the run ended before a mid-layer frame")); });
        connect(m_window, &MainWindow::runFailed, this, &ScreenshotDriver::fail);
        if (!m_window->startRun())
            fail(QStringLiteral("the run did not start"));
    };
    if (m_window->hasModel() && !m_window->isBusy())
        begin();
    else
        connect(m_window, &MainWindow::modelLoaded, this, begin, Qt::SingleShotConnection);
    connect(m_window, &MainWindow::modelLoadFailed, this, &ScreenshotDriver::fail);
}

void ScreenshotDriver::nextRun()
{
    if (m_runIndex >= int(std::size(kMethods))) {
        exportRun();
        return;
    }
    LayerSetting s;
    s.method = kMethods[m_runIndex++];
    s.sparsity = 0.5;
    PlanPanel* plan = m_window->planPanel();
    plan->setEditBarSetting(s);
    plan->applyEditBarToAll();
    std::fprintf(stderr, "screenshots: run %d (%s 50 %%)\n", m_runIndex, qPrintable(planMethodLabel(s.method)));
    if (!m_window->startRun())
        fail(QStringLiteral("the run did not start"));
}

void ScreenshotDriver::exportRun()
{
    // Back to the SparseGPT run: its plan in the Plan view, its model exported.
    LayerSetting s;
    s.sparsity = 0.5;
    m_window->planPanel()->setEditBarSetting(s);
    m_window->planPanel()->applyEditBarToAll();
    m_window->resultsPanel()->selectRun(m_sparseGptRun);
    m_exportParent = std::make_unique<QTemporaryDir>();
    m_window->exportPanel()->setOutDir(m_exportParent->filePath(QStringLiteral("stories260K-sparsegpt50")));
    if (!m_window->exportSelectedRun())
        fail(QStringLiteral("the export did not start"));
}

bool ScreenshotDriver::save(QWidget* widget, const QString& name)
{
    // 8-bit palette: UI pictures lose nothing visible and shrink several-fold.
    const QImage image = widget->grab().toImage().convertToFormat(QImage::Format_Indexed8, Qt::ThresholdDither | Qt::AvoidDither);
    const QString path = QDir(m_outDir).filePath(name + QStringLiteral(".png"));
    if (!image.save(path, "PNG", 0)) { // 0 = smallest file
        fail(QStringLiteral("cannot write %1").arg(path));
        return false;
    }
    std::fprintf(stderr, "screenshots: %s\n", qPrintable(path));
    return true;
}

void ScreenshotDriver::capture()
{
    m_window->resultsPanel()->selectRun(m_sparseGptRun);
    m_window->planPanel()->tableView()->selectRow(4);
    // The three runs side by side: Results shares the Live Solver's place in the default layout.
    m_window->dock(QStringLiteral("results"))->raise();
    settle();
    if (!save(m_window, QStringLiteral("workbench")))
        return;
    for (const QString& view : m_window->viewNames()) {
        QDockWidget* d = m_window->dock(view);
        d->show();
        // A tabbed dock comes to the front through its tab.
        for (QTabBar* bar : m_window->findChildren<QTabBar*>())
            for (int i = 0; i < bar->count(); ++i)
                if (bar->tabText(i) == d->windowTitle())
                    bar->setCurrentIndex(i);
        d->raise();
        settle(250);
        if (!save(d, view))
            return;
    }
    captureSensitivity();
}

void ScreenshotDriver::captureSensitivity()
{
    // A scan at 0–90 % × {16, 4} bits, shown in Results → Sensitivity (sensitivity.png).
    AnalysisController* analysis = m_window->analysis();
    connect(analysis, &AnalysisController::scanFinished, this, [this] {
        QDockWidget* results = m_window->dock(QStringLiteral("results"));
        results->show();
        results->raise();
        m_window->resultsPanel()->tabs()->setCurrentWidget(m_window->analysis()->panel());
        settle(300);
        if (save(results, QStringLiteral("sensitivity")))
            captureTeaching();
    }, Qt::SingleShotConnection);
    connect(analysis, &AnalysisController::scanFailed, this, &ScreenshotDriver::fail);
    AnalysisController::ScanRequest request;
    request.bits = {16, 4};
    if (!analysis->startScan(request))
        fail(QStringLiteral("the sensitivity scan did not start"));
}

void ScreenshotDriver::captureTeaching()
{
    // Teaching Mode on the hand-checkable 8 × 16 problem (H = 0.5^|i−j|, damp 0, blocks of 8),
    // three columns into the first block, with the magnitude vs SparseGPT comparison.
    m_window->openTeachingMode();
    TeachingWindow* teaching = m_window->teachingWindow();
    teaching->resize(1600, 1000);
    teaching->setSyntheticProblem({8, 16, 1, 0.5, 0});
    teaching->setStepOptions(TeachingWindow::StepOptions{});
    for (int i = 0; i < 3; ++i)
        teaching->stepColumn();
    connect(teaching, &TeachingWindow::compareFinished, this, [this, teaching] {
        settle(300);
        if (save(teaching, QStringLiteral("teaching")))
            QApplication::exit(0);
    });
    connect(teaching, &TeachingWindow::compareFailed, this, [this](const QString& m) { fail(m); });
    if (!teaching->compare())
        fail(QStringLiteral("the teaching comparison did not start"));
}

void ScreenshotDriver::fail(const QString& message)
{
    std::fprintf(stderr, "screenshots: failed: %s\n", qPrintable(message));
    QApplication::exit(1);
}

} // namespace sparselab::gui
