// Workspaces in the workbench, offscreen: two runs (SparseGPT, magnitude) are saved to a
// workspace; the file holds them (with the masks of the kept compressed model, equal to its
// zeros); a fresh window opens the workspace and shows the same runs — every field, the run
// and per-layer tables cell by cell, and the plotted values. A broken file gives an error and
// leaves the Results view as it was.

#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "main_window.h"
#include "plan_model.h"
#include "plan_panel.h"
#include "recipe_bridge.h"
#include "results_panel.h"
#include "gui_fixture.h"
#include "testsupport.h"
#include "workspace_controller.h"

#include "layer_error_plot.h"
#include "store/run_records.h"
#include "store/workspace.h"
#include "util/atomic_file.h"

#include <QFile>
#include <QMenu>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

QString qpath(const std::filesystem::path& p) { return QString::fromStdString(p.string()); }

bool sameNumber(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

QStringList tableTexts(const QTableWidget* table)
{
    QStringList cells;
    for (int r = 0; r < table->rowCount(); ++r)
        for (int c = 0; c < table->columnCount(); ++c) {
            const QTableWidgetItem* item = table->item(r, c);
            cells << (item ? item->text() + QLatin1Char('|') + item->data(Qt::CheckStateRole).toString() : QString());
        }
    return cells;
}

QList<double> plotValues(const widgets::LayerErrorPlot* plot)
{
    QList<double> values;
    for (int s = 0; s < plot->seriesCount(); ++s)
        for (int c = 0; c < plot->categoryCount(); ++c)
            values << plot->value(s, c);
    return values;
}

void compareRuns(const RunRecord& a, const RunRecord& b)
{
    QCOMPARE(a.name, b.name);
    QCOMPARE(a.finishedAt, b.finishedAt);
    QCOMPARE(a.modelFolder, b.modelFolder);
    QCOMPARE(a.device, b.device);
    QCOMPARE(a.calibration.textPath, b.calibration.textPath);
    QCOMPARE(a.calibration.nsamples, b.calibration.nsamples);
    QCOMPARE(a.calibration.seqlen, b.calibration.seqlen);
    QCOMPARE(a.calibration.seed, b.calibration.seed);
    QCOMPARE(a.evaluation.enabled, b.evaluation.enabled);
    QCOMPARE(a.evaluation.textPath, b.evaluation.textPath);
    QCOMPARE(a.evaluation.seqlen, b.evaluation.seqlen);
    QCOMPARE(a.evaluation.maxWindows, b.evaluation.maxWindows);
    QCOMPARE(a.evaluation.batchSize, b.evaluation.batchSize);
    QCOMPARE(a.plan.size(), b.plan.size());
    for (int i = 0; i < a.plan.size(); ++i) {
        QCOMPARE(a.plan[i].name, b.plan[i].name);
        QCOMPARE(a.plan[i].kind, b.plan[i].kind);
        QCOMPARE(a.plan[i].block, b.plan[i].block);
        QCOMPARE(a.plan[i].rows, b.plan[i].rows);
        QCOMPARE(a.plan[i].cols, b.plan[i].cols);
        QVERIFY(a.plan[i].setting == b.plan[i].setting);
    }
    QCOMPARE(a.layers.size(), b.layers.size());
    for (int i = 0; i < a.layers.size(); ++i) {
        QVERIFY2(a.layers[i] == b.layers[i], a.layers[i].name.c_str()); // the whole record: options and stats
    }
    QVERIFY(sameNumber(a.perplexityBefore, b.perplexityBefore));
    QVERIFY(sameNumber(a.perplexityAfter, b.perplexityAfter));
    QCOMPARE(a.evalWindows, b.evalWindows);
    QCOMPARE(a.evalSeqlen, b.evalSeqlen);
    QCOMPARE(a.linearSparsity, b.linearSparsity);
    QCOMPARE(a.pruneSeconds, b.pruneSeconds);
    QCOMPARE(a.totalSeconds, b.totalSeconds);
    QCOMPARE(a.recipeJson, b.recipeJson);
}

} // namespace

class TestWorkspaceGui : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<MainWindow> m_window;
    QStringList m_errors;
    QTemporaryDir m_tmp;

    std::unique_ptr<MainWindow> makeWindow(const QString& model) { return testing::makeWindow(&m_errors, model); }

    bool runOnce(PlanMethod method)
    {
        LayerSetting s = engineDefaultSetting();
        s.method = method;
        m_window->planPanel()->planModel()->applyUniform(s);
        QSignalSpy finished(m_window.get(), &MainWindow::runFinished);
        if (!m_window->startRun())
            return false;
        return finished.wait(300'000);
    }

private Q_SLOTS:
    void initTestCase()
    {
        testing::useFreshSettings(QStringLiteral("SparseLabWorkspaceTest"));
        QVERIFY(m_tmp.isValid());
        m_window = makeWindow(qpath(testing::demoModelDir()));
        QVERIFY(testing::waitForModel(m_window.get()));
        CalibrationSettings c;
        c.textPath = qpath(testing::demoCalibText());
        c.nsamples = 4;
        c.seqlen = 64;
        m_window->calibrationPanel()->setSettings(c);
        m_window->evaluationPanel()->setTextPath(qpath(testing::demoEvalText()));
        m_window->evaluationPanel()->setSeqlen(64);
        m_window->evaluationPanel()->setMaxWindows(4);
        QVERIFY(QTest::qWaitFor([this] { return !m_window->isBusy(); }, 60'000));
        QVERIFY(runOnce(PlanMethod::SparseGpt));
        QVERIFY(runOnce(PlanMethod::Magnitude));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        QCOMPARE(m_window->resultsPanel()->runs().size(), 2);
    }

    void cleanupTestCase()
    {
        m_window.reset();
        QSettings().clear();
    }

    void menuAndShortcuts()
    {
        WorkspaceController* ws = m_window->workspace();
        QVERIFY(ws);
        QCOMPARE(ws->openAction()->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
        QVERIFY(!ws->saveAction()->shortcut().isEmpty());
        QVERIFY(ws->recentMenu());
        QVERIFY(!ws->openAction()->toolTip().isEmpty());
    }

    void saveThenReopenRestoresResults()
    {
        WorkspaceController* ws = m_window->workspace();
        QVERIFY(ws->isModified()); // the two runs of initTestCase, not saved yet
        const QString file = m_tmp.filePath(QStringLiteral("session.h5"));
        QSignalSpy saved(ws, &WorkspaceController::workspaceSaved);
        QVERIFY(ws->saveWorkspaceAs(file));
        QVERIFY(ws->isBusy());
        QVERIFY(!ws->saveAction()->isEnabled()); // no second save while one runs
        // The save is a job of the window's one runner: no run or evaluation starts beside it.
        QCOMPARE(m_window->jobs().currentWork(), QStringLiteral("saving the workspace"));
        QVERIFY(!m_window->startRun());
        QVERIFY(m_errors.size() == 1 && m_errors.takeFirst().contains(QStringLiteral("saving the workspace")));
        QVERIFY(saved.wait(120'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        QCOMPARE(saved.first().at(1).toInt(), 2);
        QVERIFY(!ws->isModified());
        QCOMPARE(ws->currentFile(), file);
        QCOMPARE(ws->recentWorkspaces().value(0), file);

        // The file: model identity, two runs; the masks of the kept models equal their zeros.
        const auto contents = store::loadWorkspace(file.toStdString());
        QVERIFY(contents.model.has_value());
        QCOMPARE(contents.model->architecture, std::string("LlamaForCausalLM"));
        QCOMPARE(contents.runs.size(), size_t(2));
        QCOMPARE(contents.runs[1].label, m_window->resultsPanel()->runs()[1].name.toStdString());
        int withMasks = 0;
        for (int i = 0; i < 2; ++i) {
            const RunRecord& run = m_window->resultsPanel()->runs()[i];
            const auto model = m_window->runModel(run.id);
            if (!model)
                continue;
            ++withMasks;
            QVERIFY(contents.runs[size_t(i)].masks == store::zeroMasks(*model));
        }
        QVERIFY(withMasks >= 1); // the latest model is always kept

        // A fresh window opens it: the same runs, tables and plots.
        const QList<RunRecord> before = m_window->resultsPanel()->runs();
        QVERIFY(std::isfinite(before[0].perplexityBefore) && std::isfinite(before[1].perplexityAfter));
        QVERIFY(before[0].layers.size() == 35 && !before[0].plan.isEmpty());
        ResultsPanel* panel = m_window->resultsPanel();
        panel->selectRun(before[0].id);
        const QStringList layerCells = tableTexts(panel->layerTable());
        const QStringList runCells = tableTexts(panel->runTable());
        const QList<double> layerPlot = plotValues(panel->layerPlot());
        const QList<double> kindPlot = plotValues(panel->kindPlot());
        const QString perplexity = panel->perplexityText();

        auto other = makeWindow(QString());
        QSignalSpy loaded(other->workspace(), &WorkspaceController::workspaceLoaded);
        QVERIFY(other->workspace()->openWorkspace(file));
        QVERIFY(loaded.wait(120'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        const QList<RunRecord> after = other->resultsPanel()->runs();
        QCOMPARE(after.size(), before.size());
        for (int i = 0; i < before.size(); ++i)
            compareRuns(after[i], before[i]);
        ResultsPanel* reopened = other->resultsPanel();
        reopened->selectRun(after[0].id);
        QCOMPARE(tableTexts(reopened->layerTable()), layerCells);
        QCOMPARE(tableTexts(reopened->runTable()), runCells);
        QCOMPARE(plotValues(reopened->layerPlot()), layerPlot);
        QCOMPARE(plotValues(reopened->kindPlot()), kindPlot);
        QCOMPARE(reopened->perplexityText(), perplexity);
        QVERIFY(!layerPlot.isEmpty());
        QCOMPARE(other->workspace()->currentFile(), file);
        QVERIFY(!other->workspace()->isModified());

        // Saving the reopened session again gives the same runs.
        const QString again = m_tmp.filePath(QStringLiteral("again.h5"));
        QSignalSpy savedAgain(other->workspace(), &WorkspaceController::workspaceSaved);
        QVERIFY(other->workspace()->saveWorkspaceAs(again));
        QVERIFY(savedAgain.wait(120'000));
        // Runs read from a workspace are written back as stored: masks and per-token NLL too.
        const auto second = store::loadWorkspace(again.toStdString());
        QCOMPARE(second.runs.size(), size_t(2));
        for (size_t i = 0; i < 2; ++i) {
            QVERIFY(second.runs[i].layers == contents.runs[i].layers);
            QCOMPARE(second.runs[i].label, contents.runs[i].label);
            QVERIFY(second.runs[i].perplexityAfter == contents.runs[i].perplexityAfter);
            QVERIFY(second.runs[i].perplexityBefore == contents.runs[i].perplexityBefore);
            QVERIFY(second.runs[i].masks == contents.runs[i].masks);
        }
    }

    // A GUI run records the evaluation's per-window loss and per-token NLL, before and after:
    // [windows, seqlen-1] values whose row means are the window losses and whose overall mean
    // gives the perplexity (design.md §3).
    void guiRunRecordsTokenNll()
    {
        QVERIFY(!m_window->resultsPanel()->runs().isEmpty());
        const QString file = m_tmp.filePath(QStringLiteral("session.h5")); // saved by the test above
        QVERIFY(QFile::exists(file));
        const auto contents = store::loadWorkspace(file.toStdString());
        const auto& run = contents.runs.front();
        for (const auto* p : {&run.perplexityBefore, &run.perplexityAfter}) {
            QVERIFY(p->has_value());
            const store::PerplexityRecord& r = **p;
            QVERIFY(r.windows > 0 && r.seqlen > 1);
            QCOMPARE(int64_t(r.tokenNll.size()), r.windows * (r.seqlen - 1));
            QCOMPARE(int64_t(r.windowLoss.size()), r.windows);
            double total = 0.0;
            for (int64_t w = 0; w < r.windows; ++w) {
                double sum = 0.0;
                for (int64_t t = 0; t < r.seqlen - 1; ++t)
                    sum += r.tokenNll[size_t(w * (r.seqlen - 1) + t)];
                QVERIFY(std::abs(sum / double(r.seqlen - 1) - r.windowLoss[size_t(w)]) < 1e-4);
                total += r.windowLoss[size_t(w)];
            }
            QVERIFY(std::abs(std::exp(total / double(r.windows)) / r.perplexity - 1.0) < 1e-6);
        }
        QVERIFY(run.perplexityAfter->perplexity > run.perplexityBefore->perplexity);
    }

    void brokenFileKeepsResults()
    {
        const QString file = m_tmp.filePath(QStringLiteral("broken.h5"));
        writeFileAtomically(file.toStdString(), std::string_view("not hdf5 at all"));
        const int runs = m_window->resultsPanel()->runs().size();
        m_errors.clear();
        QSignalSpy failed(m_window->workspace(), &WorkspaceController::workspaceFailed);
        QVERIFY(m_window->workspace()->openWorkspace(file));
        QVERIFY(failed.wait(60'000));
        QCOMPARE(m_errors.size(), 1);
        QVERIFY2(m_errors.first().contains(file) && m_errors.first().contains(QStringLiteral("not an HDF5 file")),
                 qPrintable(m_errors.first()));
        QCOMPARE(m_window->resultsPanel()->runs().size(), runs);
        QCOMPARE(m_window->workspace()->currentFile(), m_tmp.filePath(QStringLiteral("session.h5")));
    }
};

QTEST_MAIN(TestWorkspaceGui)
#include "test_workspace_gui.moc"
