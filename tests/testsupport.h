#pragma once
// Helpers shared by the Qt Test suites: where the bundled and the shared data live.
// Tests that read ../shared/data call sharedDataOrSkip(), which QSKIPs with a message
// when that folder is absent (CI has it; a bare clone may not).

#include <QCoreApplication>
#include <QSettings>
#include <QStandardPaths>
#include <QString>
#include <QTest>

#include <filesystem>

namespace sparselab::testing {

inline std::filesystem::path resourcesDir() { return SPARSELAB_RESOURCES_DIR; }
inline std::filesystem::path demoModelDir() { return resourcesDir() / "models" / "stories260K-hf"; }
inline std::filesystem::path demoCalibText() { return resourcesDir() / "text" / "tinystories_calib.txt"; }
inline std::filesystem::path demoEvalText() { return resourcesDir() / "text" / "tinystories_eval.txt"; }
inline std::filesystem::path testDataDir() { return SPARSELAB_TEST_DATA_DIR; }
inline std::filesystem::path sharedDataDir() { return SPARSELAB_SHARED_DATA_DIR; }
inline bool haveSharedData() { return std::filesystem::exists(sharedDataDir() / "README.md"); }

// A GUI test's own settings, empty: QStandardPaths' test locations (never the user's), the
// organisation "SparseLabTest" and `application` (one per suite, so suites never share state).
inline void useFreshSettings(const QString& application)
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("SparseLabTest"));
    QCoreApplication::setApplicationName(application);
    QSettings().clear();
}

} // namespace sparselab::testing

// Use inside a test function: skips it (with the reason) when ../shared/data is absent.
#define SPARSELAB_REQUIRE_SHARED_DATA()                                                         \
    do {                                                                                        \
        if (!::sparselab::testing::haveSharedData())                                            \
            QSKIP("needs ../shared/data beside the checkout (third-party test data); absent");  \
    } while (0)
