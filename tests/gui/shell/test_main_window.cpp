// The main window offscreen: opens the demo model at startup, shows its architecture,
// evaluates perplexity (shortcut, progress, result), cancels, reports bad folders without
// crashing, accepts drops, and persists its settings.
//
// Set SPARSELAB_SCREENSHOT=/path.png to save a picture of the window after an evaluation.
#include "evaluation_panel.h"
#include "gui_fixture.h"
#include "log_view.h"
#include "main_window.h"
#include "model_tree_widget.h"
#include "testsupport.h"

#include <QAbstractItemModelTester>
#include <QAction>
#include <QApplication>
#include <QDir>
#include <QDropEvent>
#include <QElapsedTimer>
#include <QFile>
#include <QMenu>
#include <QMimeData>
#include <QScreen>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTest>
#include <QTreeView>
#include <QUrl>

#include <cmath>

using namespace sparselab;
using namespace sparselab::gui;
using widgets::ModelTreeWidget;

namespace {

QString qpath(const std::filesystem::path& p) { return QString::fromStdString(p.string()); }

// The linear layer of `block` whose kind ends with `suffix` in the tree's model.
QModelIndex findLayer(const QAbstractItemModel* model, int block, const QString& suffix)
{
    const QModelIndex blockIndex = model->index(block, 0);
    for (int r = 0; r < model->rowCount(blockIndex); ++r) {
        const QModelIndex layer = model->index(r, 0, blockIndex);
        if (layer.data(ModelTreeWidget::KindRole).toString().endsWith(suffix))
            return layer;
    }
    return {};
}

} // namespace

class TestMainWindow : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase()
    {
        // Settings go to a test location, never the user's.
        testing::useFreshSettings(QStringLiteral("SparseLabTest"));
    }

    void cleanupTestCase() { QSettings().clear(); }

    void opensDemoModelAtStartup()
    {
        QList<testing::UserError> errors;
        auto w = testing::makeLaunchedWindow(&errors);
        QAbstractItemModelTester tester(w->modelTree()->model(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        w->show();
        QSignalSpy loaded(w.get(), &MainWindow::modelLoaded);
        QVERIFY(loaded.wait(60'000));
        QVERIFY2(errors.isEmpty(), errors.isEmpty() ? "" : qPrintable(errors.first().message));
        QVERIFY(w->windowTitle().contains(QStringLiteral("stories260K-hf")));
        QVERIFY(w->evaluateAction()->isEnabled());
        QVERIFY(!w->cancelAction()->isEnabled());

        // 5 blocks × 7 linear layers, then the group of never-pruned tensors.
        const QAbstractItemModel* model = w->modelTree()->model();
        QCOMPARE(model->rowCount(), 6);
        for (int b = 0; b < 5; ++b) {
            const QModelIndex block = model->index(b, 0);
            QCOMPARE(block.data(ModelTreeWidget::NodeTypeRole).toInt(), int(ModelTreeWidget::BlockNode));
            QCOMPARE(model->rowCount(block), 7);
        }
        QCOMPARE(model->index(5, 0).data(ModelTreeWidget::NodeTypeRole).toInt(), int(ModelTreeWidget::OtherGroupNode));

        struct Expected { const char* kind; qint64 rows; qint64 cols; };
        const Expected expected[] = {{"q_proj", 64, 64}, {"k_proj", 32, 64}, {"v_proj", 32, 64}, {"o_proj", 64, 64},
                                     {"gate_proj", 172, 64}, {"up_proj", 172, 64}, {"down_proj", 64, 172}};
        for (int b = 0; b < 5; ++b) {
            for (const Expected& e : expected) {
                const QModelIndex layer = findLayer(model, b, QString::fromLatin1(e.kind));
                QVERIFY2(layer.isValid(), e.kind);
                QCOMPARE(layer.data(ModelTreeWidget::RowsRole).toLongLong(), e.rows);
                QCOMPARE(layer.data(ModelTreeWidget::ColsRole).toLongLong(), e.cols);
                QCOMPARE(layer.siblingAtColumn(ModelTreeWidget::ShapeColumn).data().toString(),
                         QStringLiteral("%1 × %2").arg(e.rows).arg(e.cols));
                QCOMPARE(layer.data(ModelTreeWidget::ParametersRole).toLongLong(), e.rows * e.cols);
                QVERIFY(!layer.siblingAtColumn(ModelTreeWidget::DtypeColumn).data().toString().isEmpty());
            }
        }
        QCOMPARE(w->recentModels().value(0), QDir::cleanPath(qpath(testing::demoModelDir())));
        QCOMPARE(w->evaluationPanel()->textPath(), QDir::cleanPath(qpath(testing::demoEvalText())));
    }

    void evaluatesWithShortcut()
    {
        QList<testing::UserError> errors;
        auto w = testing::makeLaunchedWindow(&errors);
        w->show();
        QVERIFY(QTest::qWaitForWindowExposed(w.get()));
        QVERIFY(testing::waitForModel(w.get()));
        w->evaluationPanel()->setSeqlen(256);
        w->evaluationPanel()->setMaxWindows(8);

        QSignalSpy finished(w.get(), &MainWindow::evaluationFinished);
        QSignalSpy busy(w.get(), &MainWindow::busyChanged);
        w->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(w.get()));
        QTest::keySequence(w.get(), QKeySequence(Qt::CTRL | Qt::Key_E));
        QVERIFY2(w->isBusy() || !finished.isEmpty(), "Ctrl+E started an evaluation");
        QVERIFY(finished.wait(60'000));
        QVERIFY2(errors.isEmpty(), errors.isEmpty() ? "" : qPrintable(errors.first().message));

        const double ppl = finished.first().first().toDouble();
        QVERIFY(std::isfinite(ppl));
        QVERIFY(ppl > 1.0);
        QCOMPARE(w->evaluationPanel()->resultText(), QString::number(ppl, 'f', 4));
        QCOMPARE(w->lastEvaluation().perplexity.windows, 8);
        QVERIFY(w->logView()->lastMessage().contains(QString::number(ppl, 'f', 4)));
        QVERIFY(!w->isBusy());
        QVERIFY(w->evaluateAction()->isEnabled());
        QCOMPARE(busy.count(), 2); // busy, then idle

        if (const QString shot = qEnvironmentVariable("SPARSELAB_SCREENSHOT"); !shot.isEmpty()) {
            w->resize(1280, 800);
            w->modelTree()->treeView()->setFocus();
            QTest::qWait(200);
            QVERIFY(w->grab().save(shot));
            qInfo("screenshot saved to %s", qPrintable(shot));
        }
    }

    void cancelWithEscape()
    {
        QList<testing::UserError> errors;
        auto w = testing::makeLaunchedWindow(&errors);
        w->show();
        QVERIFY(testing::waitForModel(w.get()));
        w->evaluationPanel()->setSeqlen(256);
        w->evaluationPanel()->setMaxWindows(0);
        w->evaluationPanel()->setBatchSize(1);
        const QString before = w->evaluationPanel()->resultText();

        QSignalSpy cancelled(w.get(), &MainWindow::evaluationCancelled);
        QSignalSpy finished(w.get(), &MainWindow::evaluationFinished);
        QVERIFY(w->evaluate());
        QVERIFY(w->cancelAction()->isEnabled());
        QVERIFY(!w->evaluateAction()->isEnabled());
        QVERIFY(!w->openAction()->isEnabled());
        w->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(w.get()));
        QTest::keyClick(w.get(), Qt::Key_Escape);
        QVERIFY(cancelled.wait(60'000));
        QCOMPARE(finished.count(), 0);
        QVERIFY(errors.isEmpty());
        QCOMPARE(w->evaluationPanel()->resultText(), before);
        QVERIFY(w->evaluationPanel()->statusText().contains(QStringLiteral("Cancelled")));
        QVERIFY(!w->isBusy());
        QVERIFY(w->evaluateAction()->isEnabled());
    }

    void invalidFolderShowsError_data()
    {
        QTest::addColumn<QString>("folder");
        QTest::addColumn<QString>("expected");
        QTest::newRow("missing") << QStringLiteral("/nonexistent/model") << QStringLiteral("no such folder");
        QTest::newRow("no config.json") << QStringLiteral("@tempdir") << QStringLiteral("config.json");
        QTest::newRow("bad config.json") << QStringLiteral("@badconfig") << QStringLiteral("config.json");
    }

    void invalidFolderShowsError()
    {
        QFETCH(QString, folder);
        QFETCH(QString, expected);
        QTemporaryDir tmp;
        if (folder == QLatin1String("@tempdir")) {
            folder = tmp.path();
        } else if (folder == QLatin1String("@badconfig")) {
            QFile config(tmp.filePath(QStringLiteral("config.json")));
            QVERIFY(config.open(QIODevice::WriteOnly));
            config.write("{ \"architectures\": [\"NotAModel\"");
            config.close();
            folder = tmp.path();
        }

        QList<testing::UserError> errors;
        auto w = testing::makeLaunchedWindow(&errors);
        w->show();
        QVERIFY(testing::waitForModel(w.get()));
        const widgets::ModelSummary previous = w->modelSummary();

        QSignalSpy failed(w.get(), &MainWindow::modelLoadFailed);
        QVERIFY(w->openModel(folder));
        QVERIFY(failed.wait(30'000));
        QCOMPARE(errors.size(), 1);
        QVERIFY2(errors.first().message.contains(expected), qPrintable(errors.first().message));
        QCOMPARE(w->lastError(), errors.first().message);
        QVERIFY(w->statusBar()->currentMessage().contains(expected));
        // The previous model stays loaded and usable.
        QVERIFY(w->hasModel());
        QCOMPARE(w->modelSummary().folder, previous.folder);
        QCOMPARE(w->modelTree()->model()->rowCount(), 6);
        QVERIFY(w->evaluateAction()->isEnabled());
    }

    void evaluationErrorIsReported()
    {
        QList<testing::UserError> errors;
        auto w = testing::makeLaunchedWindow(&errors);
        QVERIFY(testing::waitForModel(w.get()));
        w->evaluationPanel()->setSeqlen(512);
        QTemporaryDir tmp;
        QFile text(tmp.filePath(QStringLiteral("short.txt")));
        QVERIFY(text.open(QIODevice::WriteOnly));
        text.write("Once upon a time.");
        text.close();
        w->setEvaluationText(text.fileName());
        QSignalSpy failed(w.get(), &MainWindow::evaluationFailed);
        QVERIFY(w->evaluate());
        QVERIFY(failed.wait(30'000));
        QCOMPARE(errors.size(), 1);
        QVERIFY(w->evaluationPanel()->statusText().startsWith(QStringLiteral("Failed")));
        QVERIFY(!w->isBusy());
    }

    void dropsOpenModelsAndTexts()
    {
        QList<testing::UserError> errors;
        MainWindow::Options options;
        options.openInitialModel = false;
        auto w = testing::makeLaunchedWindow(&errors, options);
        w->show();
        QVERIFY(!w->hasModel());
        QVERIFY(!w->evaluateAction()->isEnabled());

        auto drop = [&](const QString& path) {
            QMimeData mime;
            mime.setUrls({QUrl::fromLocalFile(path)});
            QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
            QApplication::sendEvent(w.get(), &enter);
            if (!enter.isAccepted())
                return false;
            QDropEvent dropEvent(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
            QApplication::sendEvent(w.get(), &dropEvent);
            return true;
        };
        QTemporaryDir tmp;
        const QString textFile = tmp.filePath(QStringLiteral("mine.txt"));
        QFile f(textFile);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("hello");
        f.close();
        QVERIFY(drop(textFile));
        QCOMPARE(w->evaluationPanel()->textPath(), QDir::cleanPath(textFile));

        const QString binary = tmp.filePath(QStringLiteral("weights.bin"));
        QFile b(binary);
        QVERIFY(b.open(QIODevice::WriteOnly));
        b.close();
        QVERIFY(!drop(binary)); // neither a folder, nor config.json, nor text

        QSignalSpy loaded(w.get(), &MainWindow::modelLoaded);
        QVERIFY(drop(qpath(testing::demoModelDir() / "config.json")));
        QVERIFY(loaded.wait(60'000));
        QCOMPARE(w->modelSummary().name, QStringLiteral("stories260K-hf"));
    }

    void settingsPersist()
    {
        QList<testing::UserError> errors;
        {
            auto w = testing::makeLaunchedWindow(&errors);
            QVERIFY(testing::waitForModel(w.get()));
            w->evaluationPanel()->setSeqlen(128);
            w->evaluationPanel()->setMaxWindows(3);
            w->evaluationPanel()->setBatchSize(4);
            w->resize(1000, 700);
            w->close();
        }
        QSettings settings;
        QCOMPARE(settings.value(QStringLiteral("Session/lastModel")).toString(), QDir::cleanPath(qpath(testing::demoModelDir())));
        QVERIFY(settings.contains(QStringLiteral("MainWindow/state")));

        auto w = testing::makeLaunchedWindow(&errors);
        QCOMPARE(w->evaluationPanel()->seqlen(), 128);
        QCOMPARE(w->evaluationPanel()->maxWindows(), 3);
        QCOMPARE(w->evaluationPanel()->batchSize(), 4);
        // The saved size, made to fit the screen it opens on (the offscreen screen is 800 px
        // wide), but never below the layout's minimum.
        const QSize room = w->screen()->availableGeometry().size();
        QCOMPARE(w->size(), QSize(1000, 700).boundedTo(room).expandedTo(w->minimumSizeHint()));
        QVERIFY(!w->recentModels().isEmpty());
        // Recent menu: one entry per model, then "Clear Menu".
        const QList<QAction*> actions = w->recentMenu()->actions();
        QVERIFY(actions.size() >= 3);
        QVERIFY(actions.first()->toolTip().endsWith(QStringLiteral("stories260K-hf")));
        QVERIFY(testing::waitForModel(w.get()));
        w->clearRecentModels();
        QVERIFY(w->recentModels().isEmpty());
        QVERIFY(QSettings().value(QStringLiteral("Session/recentModels")).toStringList().isEmpty());
    }

    void closingDuringEvaluationCancels()
    {
        QList<testing::UserError> errors;
        auto w = testing::makeLaunchedWindow(&errors);
        QVERIFY(testing::waitForModel(w.get()));
        w->evaluationPanel()->setSeqlen(256);
        w->evaluationPanel()->setMaxWindows(0);
        w->evaluationPanel()->setBatchSize(1);
        QVERIFY(w->evaluate());
        QTest::qWait(50);
        QElapsedTimer timer;
        timer.start();
        w->close();
        w.reset(); // must not hang or crash with a job in flight
        QVERIFY(timer.elapsed() < 30'000);
    }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
