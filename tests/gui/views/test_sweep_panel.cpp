// The Sweeps dock (app/gui/views/sweep_panel.h), offscreen: a hand-built sweep (no model needed)
// shown as a table and two plots — one perplexity-vs-sparsity line per bit-width, and the
// size-vs-perplexity points with the Pareto frontier, whose points are derived by hand below;
// the same sweep read back from a workspace (.h5) and from JSON; the main window's Results view
// has it as a tab that File → Open Sweep Results fills and selects; a bad file leaves the panel unchanged with one readable message.

#include "gui_fixture.h"
#include "main_window.h"
#include "results_panel.h"
#include "workspace_controller.h"
#include "sweep_panel.h"
#include "testsupport.h"

#include "store/analysis_store.h"
#include "analysis/sweep.h"

#include "qcustomplot_include.h"

#include <QSignalSpy>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>

using namespace sparselab;

namespace {

// Grid 2 bits × 3 sparsities. (bits, sparsity) → (perplexity, MB):
//   16: 0.3 → (10, 0.40)  0.5 → (12, 0.30)  0.7 → (20, 0.20)
//    4: 0.3 → (11, 0.15)  0.5 → (13, 0.12)  0.7 → (30, 0.10)
// Pareto by hand (smaller and lower wins): sorted by size 0.10/30, 0.12/13, 0.15/11, then
// 0.20/20 (beaten by 0.15/11), 0.30/12 (beaten by 0.15/11), 0.40/10 (lowest perplexity, kept).
// Frontier: 0.10, 0.12, 0.15, 0.40 MB.
analysis::SweepResult handSweep()
{
    analysis::SweepResult r;
    r.grid.sparsities = {0.3, 0.5, 0.7};
    r.grid.bits = {16, 4};
    r.densePerplexity = 9.5;
    r.denseBytes = 520000;
    const double ppl[] = {10, 12, 20, 11, 13, 30};
    const int64_t bytes[] = {400000, 300000, 200000, 150000, 120000, 100000};
    for (int64_t i = 0; i < 6; ++i) {
        analysis::SweepPoint p;
        p.spec = analysis::sweepPointSpec(r.grid, i);
        p.perplexity = ppl[i];
        p.modelBytes = bytes[i];
        p.linearSparsity = p.spec.sparsity;
        r.points.push_back(p);
    }
    return r;
}

bool panelLegendHas(const analysis::SweepResult& sweep, const QString& name)
{
    gui::SweepPanel panel;
    panel.setSweep(sweep, "hand");
    for (int g = 0; g < panel.perplexityPlot()->graphCount(); ++g)
        if (panel.perplexityPlot()->graph(g)->name() == name)
            return true;
    return false;
}

} // namespace

class TestSweepPanel : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { testing::useFreshSettings(QStringLiteral("SparseLabSweepPanelTest")); }
    void showsTableAndPlots()
    {
        gui::SweepPanel panel;
        panel.resize(600, 800);
        panel.show();
        panel.setSweep(handSweep(), "hand");
        QCOMPARE(panel.table()->rowCount(), 6);
        int pareto = 0;
        for (int row = 0; row < 6; ++row)
            pareto += panel.table()->item(row, gui::SweepPanel::ParetoColumn)->text() == "yes";
        QCOMPARE(pareto, 4);
        // Two bit-width lines plus the dense marker, each line ordered by sparsity.
        QCOMPARE(panel.perplexityPlot()->graphCount(), 3);
        const QCPGraph* line4 = panel.perplexityPlot()->graph(0); // map order: bits 4 before 16
        QVERIFY(line4->name().contains("4-bit"));
        QCOMPARE(line4->data()->size(), 3);
        QCOMPARE(line4->data()->at(2)->value, 30.0);
        // Frontier graph: the four hand-derived points, by size.
        const QCPGraph* frontier = panel.paretoPlot()->graph(1);
        QCOMPARE(frontier->name(), QString("Pareto frontier"));
        QCOMPARE(frontier->data()->size(), 4);
        const double sizes[] = {0.10, 0.12, 0.15, 0.40};
        for (int i = 0; i < 4; ++i)
            QVERIFY(qAbs(frontier->data()->at(i)->key - sizes[i]) < 1e-12);
        QCOMPARE(panel.paretoPlot()->graph(0)->data()->size(), 6);
    }

    void namesTheAllocationWhenTheGridHasOne()
    {
        auto sweep = handSweep();
        QVERIFY(panelLegendHas(sweep, "sparsegpt all 16-bit")); // a uniform-only sweep keeps the old names
        sweep.grid.allocations = {"uniform", "search"};
        for (int64_t i = 6; i < 12; ++i) {
            analysis::SweepPoint p = sweep.points[size_t(i - 6)];
            p.spec = analysis::sweepPointSpec(sweep.grid, i);
            p.perplexity *= 0.9;
            sweep.points.push_back(p);
        }
        QCOMPARE(sweep.points[7].spec.allocation, std::string("search"));
        QVERIFY(panelLegendHas(sweep, "search sparsegpt all 16-bit"));
        QVERIFY(panelLegendHas(sweep, "uniform sparsegpt all 4-bit"));
        gui::SweepPanel panel;
        panel.setSweep(sweep, "hand");
        QCOMPARE(panel.table()->rowCount(), 12);
        QCOMPARE(panel.perplexityPlot()->graphCount(), 5); // 2 allocations × 2 bit-widths + dense
    }

    void loadsWorkspaceAndJson()
    {
        QTemporaryDir dir;
        const QString ws = dir.filePath("W.h5"), json = dir.filePath("s.json");
        store::storeSweep(ws.toStdString(), handSweep(), "grid");
        handSweep().save(json.toStdString());
        gui::SweepPanel panel;
        QString error;
        QVERIFY2(panel.loadFile(ws, &error), qPrintable(error));
        QCOMPARE(panel.sweep()->toJson().dump(), handSweep().toJson().dump());
        QVERIFY2(panel.loadFile(json, &error), qPrintable(error));
        QCOMPARE(panel.table()->rowCount(), 6);
        // Bad file: one line naming it; the panel keeps the last sweep.
        const QString bad = dir.filePath("bad.h5");
        QFile(bad).open(QIODevice::WriteOnly);
        QVERIFY(!panel.loadFile(bad, &error));
        QVERIFY2(error.contains("bad.h5") && !error.contains('\n'), qPrintable(error));
        QCOMPARE(panel.table()->rowCount(), 6);
    }

    void mainWindowDock()
    {
        QTemporaryDir dir;
        const QString ws = dir.filePath("W.h5");
        store::storeSweep(ws.toStdString(), handSweep(), "grid");
        QStringList errors;
        const auto shown = testing::makeWindow(&errors, QString());
        gui::MainWindow& window = *shown;
        QVERIFY(window.resultsPanel()->tabs()->indexOf(window.sweepPanel()) >= 0);
        QVERIFY(window.openSweepResults(ws));
        QCOMPARE(window.sweepPanel()->table()->rowCount(), 6);
        QCOMPARE(window.resultsPanel()->tabs()->currentWidget(), static_cast<QWidget*>(window.sweepPanel()));
        QVERIFY(!window.openSweepResults(dir.filePath("missing.json")));
        QCOMPARE(errors.size(), 1);
        QVERIFY2(errors[0].contains("missing.json"), qPrintable(errors[0]));
        QCOMPARE(window.sweepPanel()->table()->rowCount(), 6); // unchanged by the failure

        // Opening a workspace (File → Open Workspace) shows its sweep, or clears the tab.
        window.sweepPanel()->clear();
        QSignalSpy loaded(window.workspace(), &gui::WorkspaceController::workspaceLoaded);
        QVERIFY(window.workspace()->openWorkspace(ws));
        QVERIFY(loaded.wait(30'000));
        QCOMPARE(window.sweepPanel()->table()->rowCount(), 6);
        const QString empty = dir.filePath("empty.h5");
        store::updateWorkspaceSettings(empty.toStdString(), std::nullopt);
        QVERIFY(window.workspace()->openWorkspace(empty));
        QVERIFY(loaded.wait(30'000));
        QVERIFY(!window.sweepPanel()->hasSweep());
        QCOMPARE(window.sweepPanel()->table()->rowCount(), 0);
    }
};

QTEST_MAIN(TestSweepPanel)
#include "test_sweep_panel.moc"
