// sparselab: the desktop workbench. A thin main: application identity (QSettings uses it),
// command line, one MainWindow. Everything else lives in the sparselab_gui library.
#include "main_window.h"
#include "screenshot_driver.h"

#include "log_view.h"
#include "util/cpu_kernels.h"
#include "util/engine_threads.h"
#include "util/memory_policy.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QPalette>
#include <QStyleFactory>

namespace {

// A dark palette on the Fusion style (for dark desktops without a dark Qt theme, and for
// checking the views in dark mode).
void useDarkPalette()
{
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    QPalette p;
    const QColor window(45, 45, 48), base(30, 30, 32), text(220, 220, 220), disabled(128, 128, 128);
    p.setColor(QPalette::Window, window);
    p.setColor(QPalette::WindowText, text);
    p.setColor(QPalette::Base, base);
    p.setColor(QPalette::AlternateBase, QColor(40, 40, 43));
    p.setColor(QPalette::ToolTipBase, window);
    p.setColor(QPalette::ToolTipText, text);
    p.setColor(QPalette::PlaceholderText, QColor(150, 150, 150));
    p.setColor(QPalette::Text, text);
    p.setColor(QPalette::Button, window);
    p.setColor(QPalette::ButtonText, text);
    p.setColor(QPalette::BrightText, Qt::white);
    p.setColor(QPalette::Highlight, QColor(61, 142, 201));
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::Link, QColor(100, 170, 230));
    p.setColor(QPalette::Mid, QColor(70, 70, 74));
    p.setColor(QPalette::Dark, QColor(25, 25, 27));
    p.setColor(QPalette::Light, QColor(70, 70, 74));
    p.setColor(QPalette::Midlight, QColor(60, 60, 64));
    p.setColor(QPalette::Disabled, QPalette::Text, disabled);
    p.setColor(QPalette::Disabled, QPalette::WindowText, disabled);
    p.setColor(QPalette::Disabled, QPalette::ButtonText, disabled);
    QApplication::setPalette(p);
}

} // namespace

int main(int argc, char* argv[])
{
    sparselab::util::matchKernelsToCpu(argv); // may start the program again, before anything else
    sparselab::shortenBlasSpinWait();         // while no other thread exists
    sparselab::reuseFreedMemory();
    QApplication app(argc, argv);
    QCoreApplication::setOrganizationName(QStringLiteral("SparseLab"));
    QCoreApplication::setOrganizationDomain(QStringLiteral("sparselab.org"));
    QCoreApplication::setApplicationName(QStringLiteral("SparseLab"));
    QCoreApplication::setApplicationVersion(QStringLiteral(SPARSELAB_VERSION));
    QGuiApplication::setDesktopFileName(QStringLiteral("sparselab"));

    QCommandLineParser parser;
    parser.setApplicationDescription(QCoreApplication::translate(
        "main", "SparseLab: one-shot SparseGPT compression workbench for language models."));
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption textOption({QStringLiteral("t"), QStringLiteral("text")},
                                  QCoreApplication::translate("main", "Evaluation text file."),
                                  QCoreApplication::translate("main", "file"));
    QCommandLineOption calibOption({QStringLiteral("c"), QStringLiteral("calib")},
                                   QCoreApplication::translate("main", "Calibration text file."),
                                   QCoreApplication::translate("main", "file"));
    QCommandLineOption darkOption(QStringLiteral("dark"), QCoreApplication::translate("main", "Use a dark palette."));
    QCommandLineOption screenshotOption(
        QStringLiteral("screenshots"),
        QCoreApplication::translate("main", "Run a demo session (50 % SparseGPT, magnitude and Wanda on the model), save "
                                            "a PNG of each view into this folder, and quit. Settings are neither read nor kept."),
        QCoreApplication::translate("main", "folder"));
    parser.addOption(textOption);
    parser.addOption(calibOption);
    parser.addOption(darkOption);
    parser.addOption(screenshotOption);
    parser.addPositionalArgument(QStringLiteral("model"),
                                 QCoreApplication::translate("main", "Model folder to open (default: the last one, "
                                                                     "else the bundled demo model)."),
                                 QStringLiteral("[model]"));
    parser.process(app);

    if (parser.isSet(darkOption))
        useDarkPalette();

    sparselab::gui::MainWindow::Options options;
    if (!parser.positionalArguments().isEmpty())
        options.initialModel = parser.positionalArguments().constFirst();
    options.initialText = parser.value(textOption);
    options.initialCalibrationText = parser.value(calibOption);
    const QString screenshots = parser.value(screenshotOption);
    if (!screenshots.isEmpty()) {
        // A session of its own: the user's settings are neither used nor changed.
        QCoreApplication::setApplicationName(QStringLiteral("SparseLab-screenshots"));
        options.restoreSettings = false;
        if (options.initialModel.isEmpty())
            options.openInitialModel = true;
    }

    sparselab::gui::MainWindow window(options);
    if (const std::string blas = sparselab::util::blasKernelsNote(); !blas.empty())
        window.logView()->appendInfo(QCoreApplication::translate("main", "Engine arithmetic: %1")
                                         .arg(QString::fromStdString(blas)));
    window.logView()->appendInfo(QCoreApplication::translate("main", "CPU kernels: %1")
                                     .arg(QString::fromStdString(sparselab::util::cpuKernelsProvenance())));
    std::unique_ptr<sparselab::gui::ScreenshotDriver> driver;
    if (!screenshots.isEmpty()) {
        driver = std::make_unique<sparselab::gui::ScreenshotDriver>(&window, screenshots);
        const QString midRun = qEnvironmentVariable("SPARSELAB_SCREENSHOT_MIDRUN");
        if (midRun.isEmpty()) {
            window.resize(1600, 1000);
            driver->start();
        } else {
            driver->startMidRun(midRun); // the window as it opens on this screen
        }
    }
    window.show();
    return QApplication::exec();
}
