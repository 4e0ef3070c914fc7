#pragma once
// The one way the GUI suites make a workbench window, so that each suite states only what is
// particular to it:
//
//   QStringList errors;
//   auto window = testing::makeWindow(&errors, qpath(testing::demoModelDir()));
//   QVERIFY(testing::waitForModel(window.get()));
//
// The window starts as a new user's would (saved settings are not restored: each suite also
// calls testing::useFreshSettings), opens `model` at start (an empty string opens none;
// makeFirstStartWindow opens what the app opens by itself), is shown, and appends every error meant for the user to `errors` — "title: message" with
// ErrorText::WithTitle, the message alone otherwise — instead of showing a message box that
// would block the test. makeLaunchedWindow is the window exactly as the application makes it
// from its options (saved settings restored: the tests of what persists), before it is shown.

#include "main_window.h"

#include <QStringList>
#include <QTest>

#include <memory>

namespace sparselab::testing {

enum class ErrorText { Message, WithTitle };

// An error as the window hands it to its error handler.
struct UserError {
    QString title;
    QString message;
};

namespace detail {
inline std::unique_ptr<gui::MainWindow> shownWindow(const gui::MainWindow::Options& options, QStringList* errors,
                                                    ErrorText text)
{
    auto window = std::make_unique<gui::MainWindow>(options);
    window->setErrorHandler([errors, text](const QString& title, const QString& message) {
        errors->append(text == ErrorText::WithTitle ? title + QStringLiteral(": ") + message : message);
    });
    window->show();
    return window;
}
} // namespace detail

inline std::unique_ptr<gui::MainWindow> makeWindow(QStringList* errors, const QString& model,
                                                   ErrorText text = ErrorText::Message,
                                                   gui::MainWindow::Options options = {})
{
    options.restoreSettings = false;
    options.openInitialModel = !model.isEmpty();
    options.initialModel = model;
    return detail::shownWindow(options, errors, text);
}

// The window a new user's first start opens: default settings and whatever model the app opens
// when none is given (the bundled demo). Errors as makeWindow.
inline std::unique_ptr<gui::MainWindow> makeFirstStartWindow(QStringList* errors, ErrorText text = ErrorText::Message)
{
    gui::MainWindow::Options options;
    options.restoreSettings = false;
    return detail::shownWindow(options, errors, text);
}

// The window as the application makes it from `options` (by default the saved settings are
// restored and the last model, else the demo, is opened), not shown; its errors are appended to
// `errors` instead of being shown.
inline std::unique_ptr<gui::MainWindow> makeLaunchedWindow(QList<UserError>* errors, const gui::MainWindow::Options& options = {})
{
    auto window = std::make_unique<gui::MainWindow>(options);
    window->setErrorHandler([errors](const QString& title, const QString& message) { errors->append({title, message}); });
    return window;
}

// Waits until the window holds a model and no job runs (true), or `timeoutMs` passes (false).
inline bool waitForModel(gui::MainWindow* window, int timeoutMs = 120'000)
{
    return QTest::qWaitFor([window] { return window->hasModel() && !window->isBusy(); }, timeoutMs);
}

} // namespace sparselab::testing
