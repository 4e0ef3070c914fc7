// Trade-offs and reports in the workbench, offscreen, on the bundled demo model:
// - Run → Sensitivity Scan gives exactly the scan the core computes on the same windows, and
//   the heat-map and table show its cells;
// - Allocate from Scan puts the allocator's per-layer levels in the plan; Undo puts the plan
//   back; an impossible budget is refused with the plan unchanged;
// - Write Report writes an HTML (self-contained) and a PDF (its text read back with
//   pdftotext) whose perplexities are those of the run; a report over an input is refused, a
//   cancelled one leaves nothing;
// - Run → Sweep fills the Sweeps tab point by point, its 50 % point equal to the F5 run;
// - a run reopened from a workspace is reported from its recorded export folder (refused in one
//   line when it has none);
// - the scan and the sweep are stored in the workspace on save, comes back on open, and is not duplicated
//   by saving again.

#include "analysis_controller.h"
#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "export_panel.h"
#include "live_view.h"
#include "main_window.h"
#include "plan_model.h"
#include "plan_panel.h"
#include "results_panel.h"
#include "sweep_panel.h"
#include "sensitivity_panel.h"
#include "gui_fixture.h"
#include "testsupport.h"
#include "workspace_controller.h"

#include "allocation/owl.h"
#include "allocation/search.h"
#include "data/calibration.h"
#include "model/causal_lm.h"
#include "analysis/allocator.h"
#include "store/analysis_store.h"
#include "analysis/sensitivity.h"
#include "analysis/size_model.h"
#include "analysis/sweep.h"
#include "store/workspace.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"

#include "qcustomplot_include.h"
#include "allocation_profile_plot.h"
#include "training_curve_plot.h"

#include <QApplication>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFile>
#include <QProcess>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

#include <cmath>
#include <fstream>
#include <sstream>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

QString qpath(const std::filesystem::path& p) { return QString::fromStdString(p.string()); }

std::string readAll(const QString& file)
{
    std::ifstream in(file.toStdString(), std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

} // namespace

class TestAnalysisGui : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<MainWindow> m_window;
    QStringList m_errors;
    QTemporaryDir m_tmp;
    CalibrationSettings m_calib;

    std::unique_ptr<MainWindow> makeWindow(const QString& model) { return testing::makeWindow(&m_errors, model); }

    AnalysisController* analysis() const { return m_window->analysis(); }

    // The calibration windows the GUI's jobs use (m_calib on the demo text), drawn here with
    // the core alone, independently of the GUI.
    data::CalibrationWindows calibrationWindowsHere() const
    {
        std::ifstream in(testing::demoCalibText(), std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        data::CalibrationParams cp;
        cp.nsamples = m_calib.nsamples;
        cp.seqlen = m_calib.seqlen;
        cp.seed = m_calib.seed;
        return data::sampleCalibrationWindows(m_window->tokenizer()->encodeForModel(text.str()), cp,
                                              testing::demoCalibText());
    }

private Q_SLOTS:
    void initTestCase()
    {
        testing::useFreshSettings(QStringLiteral("SparseLabAnalysisTest"));
        QVERIFY(m_tmp.isValid());
        m_window = makeWindow(qpath(testing::demoModelDir()));
        QVERIFY(testing::waitForModel(m_window.get()));
        m_calib.textPath = qpath(testing::demoCalibText());
        m_calib.nsamples = 4;
        m_calib.seqlen = 64;
        m_window->calibrationPanel()->setSettings(m_calib);
        m_window->evaluationPanel()->setTextPath(qpath(testing::demoEvalText()));
        m_window->evaluationPanel()->setSeqlen(64);
        m_window->evaluationPanel()->setMaxWindows(4);
        QVERIFY(QTest::qWaitFor([this] { return !m_window->isBusy(); }, 60'000));
    }

    void cleanupTestCase()
    {
        m_window.reset();
        QSettings().clear();
    }

    void actionsAndShortcuts()
    {
        QCOMPARE(analysis()->scanAction()->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Y));
        QCOMPARE(analysis()->reportAction()->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
        QCOMPARE(analysis()->allocateAction()->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_A));
        QCOMPARE(analysis()->sweepAction()->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_G));
        QVERIFY(analysis()->sweepAction()->isEnabled());
        QVERIFY(analysis()->scanAction()->isEnabled());
        QVERIFY(!analysis()->allocateAction()->isEnabled()); // no scan yet
        QVERIFY(!analysis()->reportAction()->isEnabled());   // no run yet
        QVERIFY(!analysis()->undoAllocationAction()->isEnabled());
        for (QAction* a : {analysis()->scanAction(), analysis()->reportAction(), analysis()->allocateAction(),
                           analysis()->openScanAction(), analysis()->sweepAction()})
            QVERIFY(!a->toolTip().isEmpty());
    }

    void listParsing()
    {
        std::vector<double> s;
        std::vector<int> b;
        QString error;
        QVERIFY(AnalysisController::parseSparsities(QStringLiteral("0, 0.25;0.5 75%"), &s, &error));
        QCOMPARE(s, (std::vector<double>{0.0, 0.25, 0.5, 0.75}));
        QVERIFY(!AnalysisController::parseSparsities(QStringLiteral("0.5, 1.0"), &s, &error));
        QVERIFY(error.contains(QStringLiteral("'1.0'")));
        QVERIFY(!AnalysisController::parseSparsities(QString(), &s, &error));
        QVERIFY(AnalysisController::parseBits(QStringLiteral("16,4 3"), &b, &error));
        QCOMPARE(b, (std::vector<int>{16, 4, 3}));
        QVERIFY(!AnalysisController::parseBits(QStringLiteral("16, 12"), &b, &error));
        QVERIFY(error.contains(QStringLiteral("'12'")));
    }

    void scanEqualsTheCoreScan()
    {
        AnalysisController::ScanRequest request;
        request.sparsities = {0.0, 0.5, 0.8};
        request.bits = {16, 4};
        QSignalSpy finished(analysis(), &AnalysisController::scanFinished);
        QVERIFY(analysis()->startScan(request));
        QVERIFY(m_window->isBusy());
        QVERIFY(finished.wait(300'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        SensitivityPanel* panel = analysis()->panel();
        QVERIFY(panel->hasScan());
        const auto scan = panel->scan();

        // The core on the same windows (drawn here independently of the GUI).
        const auto windows = calibrationWindowsHere();
        analysis::SensitivityParams params;
        params.sparsities = request.sparsities;
        params.bits = request.bits;
        const auto core = analysis::scanSensitivity(*m_window->denseModel(), windows, params);
        QCOMPARE(scan->layers.size(), core.layers.size());
        QCOMPARE(scan->layers.size(), size_t(35));
        for (size_t l = 0; l < core.layers.size(); ++l) {
            QCOMPARE(scan->layers[l].name, core.layers[l].name);
            for (size_t i = 0; i < 3; ++i)
                for (size_t j = 0; j < 2; ++j)
                    QCOMPARE(scan->cell(l, i, j).relError, core.cell(l, i, j).relError);
        }
        // Dense level is exact, 80 % hurts more than 50 %, 4 bits add error.
        QCOMPARE(scan->cell(0, 0, 0).relError, 0.0);
        QVERIFY(scan->cell(0, 2, 0).relError > scan->cell(0, 1, 0).relError);
        QVERIFY(scan->cell(0, 1, 1).relError > scan->cell(0, 1, 0).relError);
        QVERIFY(scan->provenance.contains("model") && scan->provenance.contains("calibration"));

        // The view: a 6 × 35 colour map and table with the same numbers.
        QCPColorMap* map = panel->heatmap();
        QCOMPARE(map->data()->keySize(), 6);
        QCOMPARE(map->data()->valueSize(), 35);
        QCOMPARE(map->data()->cell(3, 7), std::max(scan->cell(7, 1, 1).relError, 1e-6));
        QCOMPARE(panel->table()->rowCount(), 35);
        QCOMPARE(panel->table()->columnCount(), 6);
        QCOMPARE(panel->table()->item(7, 3)->data(Qt::UserRole).toDouble(), scan->cell(7, 1, 1).relError);
        QCOMPARE(panel->table()->horizontalHeaderItem(3)->text(), QStringLiteral("50%/4b"));
        QVERIFY(analysis()->allocateAction()->isEnabled());
        QVERIFY(m_window->workspace()->isModified());
    }

    // Run → Allocate… with OWL: the job's plan equals the core's OWL on the same windows (drawn
    // here independently), the average is exactly the one asked for, and Undo puts it back.
    void owlAllocationGoesToThePlanAndUndoes()
    {
        m_errors.clear(); // this test's errors only, whatever ran before
        PlanModel* plan = m_window->planPanel()->planModel();
        LayerSetting uniform;
        uniform.sparsity = 0.5;
        plan->applyUniform(uniform);
        QSignalSpy applied(analysis(), &AnalysisController::allocationApplied);
        // Through the dialog as a user would: method OWL, 60 %; the search's fields are off.
        bool dialogSeen = false;
        QTimer::singleShot(0, this, [&] {
            auto* dialog = qobject_cast<QDialog*>(QApplication::activeModalWidget());
            QVERIFY(dialog);
            QCOMPARE(dialog->windowTitle(), QStringLiteral("Allocate"));
            const auto combos = dialog->findChildren<QComboBox*>();
            QCOMPARE(combos.size(), 2); // method, budget
            combos[0]->setCurrentIndex(1); // OWL
            QVERIFY(!combos[1]->isEnabled());
            for (QSpinBox* searchOnly : dialog->findChildren<QSpinBox*>())
                QVERIFY(!searchOnly->isEnabled()); // generations, time limit, seed
            dialog->findChildren<QDoubleSpinBox*>().first()->setValue(60.0);
            auto* box = dialog->findChild<QDialogButtonBox*>();
            QCOMPARE(box->button(QDialogButtonBox::Ok)->text(), QStringLiteral("Allocate"));
            dialogSeen = true;
            box->button(QDialogButtonBox::Ok)->click();
        });
        analysis()->searchAction()->trigger();
        QVERIFY(dialogSeen);
        QVERIFY(applied.wait(300'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));

        const auto windows = calibrationWindowsHere();
        allocation::OwlParams params;
        params.targetSparsity = 0.6;
        const auto owl = allocation::owlAllocation(*m_window->denseModel(), windows, params);
        double sum = 0.0;
        for (const PlanRow& row : plan->rows()) {
            QCOMPARE(row.setting.sparsity, owl.blockSparsity.at(size_t(row.block)));
            QCOMPARE(row.setting.method, PlanMethod::SparseGpt);
            sum += row.setting.sparsity;
        }
        QVERIFY(std::abs(sum / double(plan->rows().size()) - 0.6) < 1e-12); // equal-sized blocks
        QVERIFY(applied.first().at(0).toString().contains(QStringLiteral("OWL")));
        QVERIFY(analysis()->undoAllocation());
        for (const PlanRow& row : plan->rows())
            QCOMPARE(row.setting.sparsity, 0.5);
    }

    void searchAllocationGoesToThePlanAndUndoes()
    {
        m_errors.clear();
        PlanModel* plan = m_window->planPanel()->planModel();
        LayerSetting uniform;
        uniform.sparsity = 0.5;
        plan->applyUniform(uniform);
        QSignalSpy applied(analysis(), &AnalysisController::allocationApplied);
        AnalysisController::SearchRequest request;
        request.averageSparsity = 0.6;
        request.generations = 3;
        request.seed = 4;
        QVERIFY(analysis()->startSearch(request));
        QVERIFY(analysis()->stopSearchAction()->isEnabled());
        QVERIFY(!analysis()->startSearch(request)); // one engine job at a time
        m_errors.clear();
        QVERIFY(applied.wait(300'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        QVERIFY(!analysis()->stopSearchAction()->isEnabled());
        // The live curve: the uniform start and one point per generation.
        QCOMPARE(m_window->liveView()->recoveryPlot()->lossPoints(), 4);
        // The profile beside it: 7 layer kinds, the uniform line and OWL's block sparsities.
        QCOMPARE(m_window->liveView()->profilePlot()->kindCount(), 7);
        QCOMPARE(m_window->liveView()->profilePlot()->plot()->graphCount(), 9);
        QCOMPARE(m_window->liveView()->profilePlot()->plot()->graph(8)->dataCount(), 5); // OWL, per block
        QVERIFY(m_window->liveView()->recoveryPane()->isVisible() || !m_window->isVisible());

        // The same search run here directly (same windows, seed and one thread) gives the plan.
        const auto windows = calibrationWindowsHere();
        allocation::SearchParams params;
        params.targetSparsity = 0.6;
        params.base.sparsity = 0.6;
        params.generations = 3;
        params.seed = 4;
        params.fitnessWindows = std::min<int64_t>(params.fitnessWindows, windows.nsamples);
        const auto expected = allocation::searchAllocation(*m_window->denseModel(), windows, params);
        QCOMPARE(m_window->liveView()->recoveryPlot()->lastLoss(), expected.bestFitness);
        double weighted = 0.0, weights = 0.0;
        for (const PlanRow& row : plan->rows()) {
            const auto it = std::find_if(expected.layers.begin(), expected.layers.end(),
                                         [&](const auto& l) { return l.name == row.name.toStdString(); });
            QVERIFY(it != expected.layers.end());
            QCOMPARE(row.setting.sparsity, expected.sparsity[size_t(it - expected.layers.begin())]);
            QCOMPARE(row.setting.method, PlanMethod::SparseGpt);
            weighted += row.setting.sparsity * double(row.weights());
            weights += double(row.weights());
        }
        QVERIFY(std::abs(weighted / weights - 0.6) < 1e-12); // exact at the weighted average
        QVERIFY(applied.first().at(0).toString().contains(QStringLiteral("search")));
        QVERIFY(analysis()->undoAllocation());
        for (const PlanRow& row : plan->rows())
            QCOMPARE(row.setting.sparsity, 0.5);
    }

    void searchWithASizeBudgetStaysUnderIt()
    {
        m_errors.clear();
        PlanModel* plan = m_window->planPanel()->planModel();
        LayerSetting uniform;
        uniform.sparsity = 0.5;
        plan->applyUniform(uniform);
        QSignalSpy applied(analysis(), &AnalysisController::allocationApplied);
        AnalysisController::SearchRequest request;
        request.budgetBytes = 200'000; // the demo at fp16: 520,064 bytes
        request.generations = 2;
        QVERIFY(analysis()->startSearch(request));
        QVERIFY(applied.wait(300'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        // The plan's size by the size model, every other parameter at fp16.
        int64_t linear = 0, bytes = 0;
        for (const PlanRow& row : plan->rows()) {
            QVERIFY(row.setting.bits == 16 || row.setting.bits == 8 || row.setting.bits == 4);
            linear += row.weights();
            bytes += analysis::linearLayerBytes(row.rows, row.cols, row.setting.sparsity, row.setting.bits);
        }
        bytes += analysis::fixedParameterBytes(m_window->denseModel()->parameterCount() - linear);
        QVERIFY2(bytes <= 200'000, qPrintable(QString::number(bytes)));
        QVERIFY(applied.first().at(0).toString().contains(QStringLiteral("200.0 KB")));
        QVERIFY(analysis()->undoAllocation());
    }

    void allocationGoesToThePlanAndUndoes()
    {
        QVERIFY(analysis()->panel()->hasScan());
        PlanModel* plan = m_window->planPanel()->planModel();
        LayerSetting uniform;
        uniform.sparsity = 0.5;
        plan->applyUniform(uniform);
        const QList<PlanRow> before = plan->rows();

        SensitivityPanel::AllocationRequest request;
        request.budget = SensitivityPanel::Budget::AverageSparsity;
        request.value = 0.5;
        request.metric = SensitivityPanel::Metric::Relative;
        analysis()->panel()->setAllocationRequest(request);
        QVERIFY(analysis()->allocateToPlan());

        analysis::AllocatorParams params;
        params.kind = analysis::BudgetKind::AverageSparsity;
        params.averageSparsity = 0.5;
        const auto expected = analysis::allocate(*analysis()->panel()->scan(), params).allocated;
        const QList<PlanRow>& rows = plan->rows();
        QCOMPARE(size_t(rows.size()), expected.layers.size());
        double weighted = 0.0, weights = 0.0;
        bool differs = false;
        for (const auto& layer : expected.layers) {
            const auto it = std::find_if(rows.begin(), rows.end(),
                                         [&](const PlanRow& r) { return r.name.toStdString() == layer.name; });
            QVERIFY(it != rows.end());
            const LayerSetting& s = it->setting;
            if (layer.sparsity == 0.0 && layer.bits == 16) {
                QVERIFY(s.dense() || (s.sparsity == 0.0 && s.bits == 16));
            } else {
                QCOMPARE(s.sparsity, layer.sparsity);
                QCOMPARE(s.bits, layer.bits);
            }
            differs = differs || std::abs(layer.sparsity - 0.5) > 1e-9;
            weighted += s.targetSparsity() * double(it->weights());
            weights += double(it->weights());
        }
        QVERIFY(differs);                        // not simply uniform
        QVERIFY(weighted / weights >= 0.5 - 1e-9); // the budget holds in the plan
        QVERIFY(analysis()->panel()->allocationLabel()->text().contains(QStringLiteral("uniform")));
        QVERIFY(analysis()->undoAllocationAction()->isEnabled());

        QVERIFY(analysis()->undoAllocation());
        for (int i = 0; i < rows.size(); ++i)
            QVERIFY(plan->rows()[i].setting == before[i].setting);
        QVERIFY(!analysis()->undoAllocationAction()->isEnabled());

        // A model-size budget below what any allocation can reach: refused, plan unchanged.
        request.budget = SensitivityPanel::Budget::ModelMegabytes;
        request.value = 0.001;
        analysis()->panel()->setAllocationRequest(request);
        m_errors.clear();
        QVERIFY(!analysis()->allocateToPlan());
        QCOMPARE(m_errors.size(), 1);
        for (int i = 0; i < rows.size(); ++i)
            QVERIFY(plan->rows()[i].setting == before[i].setting);
        m_errors.clear();
    }

    void reportOfARun()
    {
        LayerSetting s;
        s.sparsity = 0.5;
        m_window->planPanel()->planModel()->applyUniform(s);
        QSignalSpy ran(m_window.get(), &MainWindow::runFinished);
        QVERIFY(m_window->startRun());
        QVERIFY(ran.wait(300'000));
        QVERIFY(analysis()->reportAction()->isEnabled());
        const RunRecord run = m_window->resultsPanel()->runs().last();
        QVERIFY(std::isfinite(run.perplexityAfter));

        // An output over an input is refused before anything runs.
        m_errors.clear();
        AnalysisController::ReportRequest bad;
        bad.htmlPath = qpath(testing::demoEvalText());
        QVERIFY(!analysis()->writeReport(bad));
        QCOMPARE(m_errors.size(), 1);
        bad.htmlPath = m_tmp.filePath(QStringLiteral("report.pdf"));
        QVERIFY(!analysis()->writeReport(bad)); // wrong extension
        QCOMPARE(m_errors.size(), 2);
        m_errors.clear();

        // Cancelled: nothing written.
        AnalysisController::ReportRequest request;
        request.htmlPath = m_tmp.filePath(QStringLiteral("cancelled.html"));
        request.pdfPath = m_tmp.filePath(QStringLiteral("cancelled.pdf"));
        QSignalSpy cancelled(analysis(), &AnalysisController::jobCancelled);
        QVERIFY(analysis()->writeReport(request));
        m_window->cancelJob();
        QVERIFY(cancelled.wait(120'000));
        QVERIFY(!QFile::exists(request.htmlPath) && !QFile::exists(request.pdfPath));
        QVERIFY(m_errors.isEmpty());

        request.htmlPath = m_tmp.filePath(QStringLiteral("report.html"));
        request.pdfPath = m_tmp.filePath(QStringLiteral("report.pdf"));
        request.prompts = {QStringLiteral("Once upon a time"), QStringLiteral("The cat")};
        request.newTokens = 12;
        QSignalSpy written(analysis(), &AnalysisController::reportWritten);
        QVERIFY(analysis()->writeReport(request));
        QVERIFY(written.wait(300'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        QCOMPARE(analysis()->lastReportFiles().size(), 2);

        const std::string html = readAll(request.htmlPath);
        QVERIFY(html.size() > 2000);
        for (const char* absent : {"<script", "src=\"http", "href=\"http", "<link", "@import", "url("})
            QVERIFY2(html.find(absent) == std::string::npos, absent);
        for (const char* expected : {"Summary", "Provenance", "Greedy continuations", "The cat", "model.layers.4.mlp.down_proj",
                                     "Workspace"})
            QVERIFY2(html.find(expected) != std::string::npos, expected);
        QVERIFY(html.find(run.name.toStdString()) != std::string::npos);
        // Perplexities as the run measured them (same text, windows and length), 4 decimals.
        char before[32], after[32];
        std::snprintf(before, sizeof before, "%.4f", run.perplexityBefore);
        std::snprintf(after, sizeof after, "%.4f", run.perplexityAfter);
        QVERIFY2(html.find(before) != std::string::npos, before);
        QVERIFY2(html.find(after) != std::string::npos, after);
        // The sensitivity heat-map of the Sensitivity tab is plotted.
        QVERIFY(html.find("<svg") != std::string::npos);

        if (QStandardPaths::findExecutable(QStringLiteral("pdftotext")).isEmpty())
            QSKIP("pdftotext (poppler-utils) is not installed; the PDF was written but not read back");
        QProcess pdftotext;
        pdftotext.start(QStringLiteral("pdftotext"), {QStringLiteral("-layout"), request.pdfPath, QStringLiteral("-")});
        QVERIFY(pdftotext.waitForFinished(60'000) && pdftotext.exitCode() == 0);
        const std::string text = pdftotext.readAllStandardOutput().toStdString();
        for (const char* expected : {"SparseLab compression report", "1. Summary", "2. Provenance", "3. Per-layer results",
                                     "4. Plots", "5. Next-token distribution", "6. Greedy continuations", "The cat"})
            QVERIFY2(text.find(expected) != std::string::npos, expected);
        QVERIFY(text.find(after) != std::string::npos);
        QVERIFY(std::count(text.begin(), text.end(), '\f') >= 3); // pages
    }

    void sweepFillsTheSweepsTab()
    {
        // The 50 % point must equal the F5 run of reportOfARun (same windows, same evaluation),
        // reached through another path (analysis::evaluateRecipe on a fresh copy).
        const RunRecord run = m_window->resultsPanel()->runs().last();
        AnalysisController::SweepRequest request;
        request.sparsities = {0.3, 0.5};
        request.bits = {16};
        request.methods = {0};
        request.groups = {"all"};
        request.allocations = {"uniform", "owl"}; // the allocation axis: uniform points first
        QSignalSpy finished(analysis(), &AnalysisController::sweepFinished);
        int tableUpdates = 0;
        QTimer poll;
        int maxRows = 0;
        connect(&poll, &QTimer::timeout, this, [&] {
            const int rows = m_window->sweepPanel()->table()->rowCount();
            if (rows != maxRows)
                ++tableUpdates;
            maxRows = std::max(maxRows, rows);
        });
        poll.start(5);
        QVERIFY(analysis()->startSweep(request));
        QVERIFY(finished.wait(300'000));
        poll.stop();
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        const analysis::SweepResult* sweep = m_window->sweepPanel()->sweep();
        QVERIFY(sweep);
        QCOMPARE(sweep->points.size(), size_t(4));
        QCOMPARE(m_window->sweepPanel()->table()->rowCount(), 4);
        QCOMPARE(sweep->densePerplexity, run.perplexityBefore);
        QCOMPARE(sweep->points[1].spec.sparsity, 0.5);
        QVERIFY2(std::abs(sweep->points[1].perplexity / run.perplexityAfter - 1.0) < 1e-9,
                 qPrintable(QStringLiteral("%1 vs %2").arg(sweep->points[1].perplexity).arg(run.perplexityAfter)));
        QVERIFY(sweep->points[0].perplexity < sweep->points[1].perplexity);
        QVERIFY(tableUpdates >= 1); // the table filled in before the end
        // OWL's points: the same average sparsity spread unevenly over the blocks, recorded with
        // OWL's settings; the table and the legend name the allocation.
        for (size_t i : {size_t(2), size_t(3)}) {
            const auto& owl = sweep->points[i];
            QCOMPARE(owl.spec.allocation, std::string("owl"));
            QVERIFY(std::abs(owl.linearSparsity - owl.spec.sparsity) < 2e-3);
            double lo = 1.0, hi = 0.0;
            for (const auto& layer : owl.layers) {
                lo = std::min(lo, layer.stats.sparsity);
                hi = std::max(hi, layer.stats.sparsity);
            }
            QVERIFY(hi - lo > 0.02);
        }
        QCOMPARE(sweep->settings["allocation"]["owl"]["lambda"].get<double>(), 0.08);
        int owlRows = 0;
        for (int row = 0; row < 4; ++row)
            owlRows += m_window->sweepPanel()->table()->item(row, SweepPanel::AllocationColumn)->text() == "owl";
        QCOMPARE(owlRows, 2);
    }

    void scanIsStoredInTheWorkspace()
    {
        QVERIFY(analysis()->panel()->hasScan());
        const QString file = m_tmp.filePath(QStringLiteral("analysis.h5"));
        QSignalSpy saved(m_window->workspace(), &WorkspaceController::workspaceSaved);
        QVERIFY(m_window->workspace()->saveWorkspaceAs(file));
        QVERIFY(saved.wait(120'000));
        auto contents = store::loadWorkspace(file.toStdString(), {false, false});
        QCOMPARE(store::storedSensitivities(contents), std::vector<std::string>{"scan_0001"});
        QCOMPARE(store::storedSweeps(contents), std::vector<std::string>{"sweep_0001"});
        QCOMPARE(store::loadSweepFrom(file.toStdString()).toJson().dump(), m_window->sweepPanel()->sweep()->toJson().dump());
        const std::string json = analysis()->panel()->scan()->toJson().dump();
        QCOMPARE(store::loadSensitivityFrom(file.toStdString()).toJson().dump(), json);

        auto other = makeWindow(QString());
        QSignalSpy loaded(other->workspace(), &WorkspaceController::workspaceLoaded);
        QVERIFY(other->workspace()->openWorkspace(file));
        QVERIFY(loaded.wait(120'000));
        QVERIFY(other->analysis()->panel()->hasScan());
        QCOMPARE(other->analysis()->panel()->scan()->toJson().dump(), json);
        QCOMPARE(other->analysis()->panel()->table()->rowCount(), 35);

        // Saving the reopened workspace again keeps one copy of the scan.
        QSignalSpy savedAgain(other->workspace(), &WorkspaceController::workspaceSaved);
        QVERIFY(other->workspace()->saveWorkspace());
        QVERIFY(savedAgain.wait(120'000));
        contents = store::loadWorkspace(file.toStdString(), {false, false});
        QCOMPARE(store::storedSensitivities(contents), std::vector<std::string>{"scan_0001"});
        QCOMPARE(store::storedSweeps(contents), std::vector<std::string>{"sweep_0001"});
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
    }

    // A run opened from a workspace has no model in memory: the report comes from the
    // workspace (its recorded export folder, the model hashes checked), as the CLI's
    // `report W.h5 --run ID`; without an export folder it is refused with one line.
    void reportOfAWorkspaceRun()
    {
        const RunRecord run = m_window->resultsPanel()->runs().last();
        const QString exported = m_tmp.filePath(QStringLiteral("exported"));
        m_window->resultsPanel()->selectRun(run.id);
        m_window->exportPanel()->setOutDir(exported);
        QSignalSpy exportDone(m_window.get(), &MainWindow::exportFinished);
        QVERIFY(m_window->exportSelectedRun());
        QVERIFY(exportDone.wait(120'000));

        const QString file = m_tmp.filePath(QStringLiteral("reports.h5"));
        QSignalSpy saved(m_window->workspace(), &WorkspaceController::workspaceSaved);
        QVERIFY(m_window->workspace()->saveWorkspaceAs(file));
        QVERIFY(saved.wait(120'000));
        const QString noExport = m_tmp.filePath(QStringLiteral("no-export.h5"));
        QVERIFY(QFile::copy(file, noExport));
        auto contents = store::loadWorkspace(file.toStdString());
        contents.runs.back().exportPath = exported.toStdString(); // as `prune --workspace` records it
        store::saveWorkspace(file.toStdString(), contents);
        const auto openIn = [this](const QString& workspace) {
            auto window = makeWindow(QString());
            QSignalSpy loaded(window->workspace(), &WorkspaceController::workspaceLoaded);
            if (!window->workspace()->openWorkspace(workspace) || !loaded.wait(120'000))
                return std::unique_ptr<MainWindow>();
            window->resultsPanel()->selectRun(window->resultsPanel()->runs().last().id);
            return window;
        };
        m_errors.clear();

        // Recorded no export folder: refused in one line, nothing written.
        auto first = openIn(noExport);
        QVERIFY(first);
        QVERIFY(first->analysis()->reportAction()->isEnabled());
        AnalysisController::ReportRequest request;
        request.htmlPath = m_tmp.filePath(QStringLiteral("from-workspace.html"));
        QSignalSpy failed(first->analysis(), &AnalysisController::reportFailed);
        QVERIFY(first->analysis()->writeReport(request));
        QVERIFY(failed.wait(120'000));
        QCOMPARE(m_errors.size(), 1);
        QVERIFY2(m_errors.first().contains(QStringLiteral("recorded no export folder")), qPrintable(m_errors.first()));
        QVERIFY(!QFile::exists(request.htmlPath));
        m_errors.clear();

        // With the export folder recorded.
        auto other = openIn(file);
        QVERIFY(other);
        request.newTokens = 8;
        QSignalSpy written(other->analysis(), &AnalysisController::reportWritten);
        QVERIFY(other->analysis()->writeReport(request));
        QVERIFY(written.wait(300'000));
        QVERIFY2(m_errors.isEmpty(), m_errors.isEmpty() ? "" : qPrintable(m_errors.first()));
        const std::string html = readAll(request.htmlPath);
        char after[32];
        std::snprintf(after, sizeof after, "%.4f", run.perplexityAfter);
        QVERIFY2(html.find(after) != std::string::npos, after);
        QVERIFY(html.find("files match the SHA-256") != std::string::npos); // the workspace's hash check
    }
};

QTEST_MAIN(TestAnalysisGui)
#include "test_analysis_gui.moc"
