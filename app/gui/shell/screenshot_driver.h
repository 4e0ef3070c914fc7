#pragma once
// Drives a MainWindow through a demo session and saves a PNG of each view, for the
// documentation (scripts/screenshots.sh runs `sparselab --screenshots DIR` under Xvfb):
// load the demo model, calibrate on the bundled text, run SparseGPT, magnitude and Wanda at
// 50 % (so Results overlays three runs), export the SparseGPT run to a temporary folder,
// then grab every dock (QWidget::grab) and the whole window, then run a sensitivity scan and
// grab Results → Sensitivity (sensitivity.png), then the Teaching Mode window (teaching.png),
// and quit.
// Mid-run mode (startMidRun, SPARSELAB_SCREENSHOT_MIDRUN=NAME): the window as it opens on the
// screen it is on, in the default layout, while a 50 % SparseGPT run is going: grabbed at a
// frame in the middle of a layer once a third of the layers are solved (NAME.png), then the
// run is cancelled and the application quits.
// Images are saved with an 8-bit palette to stay small. GUI thread only.

#include "session_types.h"

#include <QObject>
#include <QString>
#include <QTemporaryDir>

#include <memory>

namespace sparselab::gui {

class MainWindow;

class ScreenshotDriver : public QObject {
    Q_OBJECT

public:
    ScreenshotDriver(MainWindow* window, QString outDir, QObject* parent = nullptr);

    // Starts once the window's model has loaded; quits the application when done
    // (exit code 0, or 1 after printing the reason on stderr).
    void start();
    void startMidRun(const QString& name);

private:
    void nextRun();
    void exportRun();
    void capture();
    void captureSensitivity();
    void captureTeaching();
    void fail(const QString& message);
    bool save(QWidget* widget, const QString& name);

    MainWindow* m_window;
    QString m_outDir;
    int m_runIndex = 0;
    int m_sparseGptRun = -1;
    int m_layersSolved = 0;
    bool m_midRunSaved = false;
    std::unique_ptr<QTemporaryDir> m_exportParent;
};

} // namespace sparselab::gui
