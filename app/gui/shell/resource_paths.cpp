#include "resource_paths.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStringList>

namespace sparselab::gui {

namespace {
const QString kDemoModel = QStringLiteral("models/stories260K-hf");
const QString kDemoText = QStringLiteral("text/tinystories_eval.txt");

bool holdsDemo(const QString& dir)
{
    return !dir.isEmpty() && QFileInfo::exists(dir + QLatin1Char('/') + kDemoModel + QStringLiteral("/config.json"));
}
} // namespace

QString resourcesDir()
{
    QStringList candidates;
    candidates << qEnvironmentVariable("SPARSELAB_RESOURCES");
    if (QCoreApplication::instance())
        candidates << QCoreApplication::applicationDirPath() + QStringLiteral("/../share/sparselab");
    candidates << QStringLiteral(SPARSELAB_INSTALLED_RESOURCES) << QStringLiteral(SPARSELAB_SOURCE_RESOURCES);
    for (const QString& dir : candidates) {
        if (holdsDemo(dir))
            return QDir::cleanPath(QFileInfo(dir).absoluteFilePath());
    }
    return {};
}

QString demoModelDir()
{
    const QString dir = resourcesDir();
    return dir.isEmpty() ? QString() : dir + QLatin1Char('/') + kDemoModel;
}

QString demoEvalText()
{
    const QString dir = resourcesDir();
    const QString path = dir + QLatin1Char('/') + kDemoText;
    return !dir.isEmpty() && QFileInfo::exists(path) ? path : QString();
}

QString demoCalibText()
{
    const QString dir = resourcesDir();
    const QString path = dir + QStringLiteral("/text/tinystories_calib.txt");
    return !dir.isEmpty() && QFileInfo::exists(path) ? path : QString();
}

} // namespace sparselab::gui
