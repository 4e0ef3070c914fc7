// The Plan view's model and its recipe bridge, without loading a model: a table shaped like
// the demo model (5 blocks × q, k, v, o, gate, up, down). QAbstractItemModelTester watches
// every change; edits, bulk edits through the delegate, presets, totals, and the recipe JSON
// round trip (compact and exact), glob recipes and readable errors.
#include "plan_model.h"
#include "plan_panel.h"
#include "recipe_bridge.h"

#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFile>
#include <QItemSelectionModel>
#include <QSignalSpy>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>

using namespace sparselab::gui;

namespace {

// The demo model's linear layers (stories260K: hidden 64, MLP 172, GQA k/v 32).
QList<PlanRow> demoRows()
{
    struct Kind { const char* kind; qint64 rows, cols; };
    const Kind kinds[] = {{"self_attn.q_proj", 64, 64},  {"self_attn.k_proj", 32, 64}, {"self_attn.v_proj", 32, 64},
                          {"self_attn.o_proj", 64, 64},  {"mlp.gate_proj", 172, 64},   {"mlp.up_proj", 172, 64},
                          {"mlp.down_proj", 64, 172}};
    QList<PlanRow> rows;
    for (int b = 0; b < 5; ++b)
        for (const Kind& k : kinds) {
            PlanRow r;
            r.kind = QString::fromLatin1(k.kind);
            r.name = QStringLiteral("model.layers.%1.%2").arg(b).arg(r.kind);
            r.block = b;
            r.rows = k.rows;
            r.cols = k.cols;
            r.setting = engineDefaultSetting();
            rows.append(r);
        }
    return rows;
}

// A plan with every kind of difference: methods, dense, N:M, bits, group, damping.
void makeMixed(PlanModel& model)
{
    QVERIFY(model.setField({0, 1, 2}, PlanModel::MethodColumn, int(PlanMethod::Wanda)));
    QVERIFY(model.setField({3}, PlanModel::MethodColumn, int(PlanMethod::Magnitude)));
    QVERIFY(model.setField({4, 5}, PlanModel::PatternColumn, QStringLiteral("2:4")));
    QVERIFY(model.setField({6, 7, 8}, PlanModel::SparsityColumn, 0.7));
    QVERIFY(model.setField({9}, PlanModel::BitsColumn, 4));
    QVERIFY(model.setField({33, 34}, PlanModel::MethodColumn, int(PlanMethod::Dense)));
    LayerSetting odd = model.rowAt(20).setting;
    odd.group = 32;
    odd.bits = 3;
    odd.sym = true;
    odd.damp = 0.05;
    odd.blocksize = 64;
    model.setSetting({20}, odd);
}

} // namespace

class TestPlanModel : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void modelPassesTester()
    {
        PlanModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        model.setRows(demoRows());
        QCOMPARE(model.rowCount(), 35);
        QCOMPARE(model.columnCount(), int(PlanModel::ColumnCount));
        makeMixed(model);
        model.applyUniform(engineDefaultSetting());
        model.keepEndBlocksDense(1);
        model.splitAttentionMlp(0.3, 0.6, PlanMethod::SparseGpt);
        model.setRows({});
        QCOMPARE(model.rowCount(), 0);
        model.setRows(demoRows());
        for (int c = 0; c < model.columnCount(); ++c) {
            QVERIFY(!model.headerData(c, Qt::Horizontal).toString().isEmpty());
            QVERIFY(!model.headerData(c, Qt::Horizontal, Qt::ToolTipRole).toString().isEmpty());
        }
    }

    void gridColumn()
    {
        // The quantization grid per row: shown as words, edited as words, only on quantized rows.
        PlanModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        model.setRows(demoRows());
        const QModelIndex grid = model.index(0, PlanModel::GridColumn);
        QCOMPARE(grid.data().toString(), QStringLiteral("—")); // 16 bits: no grid
        QVERIFY(!(model.flags(grid) & Qt::ItemIsEditable));
        QVERIFY(model.setData(model.index(0, PlanModel::BitsColumn), 4));
        QVERIFY(model.flags(grid) & Qt::ItemIsEditable);
        QCOMPARE(grid.data().toString(), QStringLiteral("row asym"));
        QVERIFY(model.setData(grid, QStringLiteral("g32  SYM act static fp16")));
        const LayerSetting s = model.rowAt(0).setting;
        QCOMPARE(s.group, qint64(32));
        QVERIFY(s.sym && s.actOrder && s.staticGroups && s.fp16Scale);
        QCOMPARE(grid.data().toString(), QStringLiteral("g32 sym act static fp16"));
        QVERIFY(!model.setData(grid, QStringLiteral("g0 sym")));
        QVERIFY(!model.setData(grid, QStringLiteral("g32 fancy")));
        QCOMPARE(model.rowAt(0).setting, s); // refused edits change nothing
        LayerSetting t;
        QVERIFY(PlanModel::parseGrid(QStringLiteral("row"), &t));
        QCOMPARE(t.group, qint64(0));
        QVERIFY(!t.sym);
    }

    void editsAndFlags()
    {
        PlanModel model;
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        model.setRows(demoRows());
        QSignalSpy changed(&model, &PlanModel::planChanged);
        const QModelIndex sparsity = model.index(0, PlanModel::SparsityColumn);
        QCOMPARE(sparsity.data().toString(), QStringLiteral("50.0 %"));
        QVERIFY(model.flags(sparsity) & Qt::ItemIsEditable);
        QVERIFY(!(model.flags(model.index(0, PlanModel::LayerColumn)) & Qt::ItemIsEditable));
        QVERIFY(model.setData(sparsity, 0.6));
        QCOMPARE(model.rowAt(0).setting.sparsity, 0.6);
        QCOMPARE(changed.count(), 1);
        QVERIFY(!model.setData(sparsity, 1.5));     // out of range
        QVERIFY(!model.setData(model.index(0, PlanModel::PatternColumn), QStringLiteral("4:2")));
        QVERIFY(!model.setData(model.index(0, PlanModel::BitsColumn), 9));
        QCOMPARE(changed.count(), 1);

        QVERIFY(model.setData(model.index(0, PlanModel::PatternColumn), QStringLiteral("2:4")));
        QCOMPARE(model.rowAt(0).setting.nmN, 2);
        QCOMPARE(model.rowAt(0).setting.nmM, 4);
        QCOMPARE(model.index(0, PlanModel::SparsityColumn).data(PlanModel::TargetSparsityRole).toDouble(), 0.5);
        QVERIFY(!(model.flags(sparsity) & Qt::ItemIsEditable)); // set by the pattern
        QVERIFY(model.setData(model.index(0, PlanModel::PatternColumn), QStringLiteral("unstructured")));
        QVERIFY(model.flags(sparsity) & Qt::ItemIsEditable);

        QVERIFY(model.setData(model.index(0, PlanModel::MethodColumn), int(PlanMethod::Dense)));
        QVERIFY(!(model.flags(sparsity) & Qt::ItemIsEditable));
        QVERIFY(!(model.flags(model.index(0, PlanModel::BitsColumn)) & Qt::ItemIsEditable));
        QCOMPARE(model.index(0, PlanModel::MethodColumn).data().toString(), QStringLiteral("Dense"));
        QCOMPARE(model.index(0, PlanModel::SparsityColumn).data().toString(), QStringLiteral("—"));
        QVERIFY(model.index(0, PlanModel::LayerColumn).data(Qt::FontRole).value<QFont>().italic());
        QVERIFY(model.setData(model.index(0, PlanModel::MethodColumn), QStringLiteral("wanda")));
        QCOMPARE(model.rowAt(0).setting.method, PlanMethod::Wanda);
        QVERIFY(model.setData(model.index(1, PlanModel::BitsColumn), 4));
        QCOMPARE(model.index(1, PlanModel::BitsColumn).data().toString(), QStringLiteral("4"));
    }

    void bulkEditThroughDelegate()
    {
        PlanPanel panel;
        panel.planModel()->setRows(demoRows());
        QAbstractItemModelTester tester(panel.planModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);
        QTableView* view = panel.tableView();
        // Select every q_proj (rows 0, 7, 14, 21, 28), then edit one of them.
        for (int b = 0; b < 5; ++b)
            view->selectionModel()->select(panel.planModel()->index(b * 7, 0),
                                           QItemSelectionModel::Select | QItemSelectionModel::Rows);
        const QModelIndex edited = panel.planModel()->index(14, PlanModel::SparsityColumn);
        QStyleOptionViewItem option;
        QWidget* editor = view->itemDelegate()->createEditor(view->viewport(), option, edited);
        auto* spin = qobject_cast<QDoubleSpinBox*>(editor);
        QVERIFY(spin);
        view->itemDelegate()->setEditorData(spin, edited);
        QCOMPARE(spin->value(), 50.0);
        spin->setValue(80.0);
        view->itemDelegate()->setModelData(spin, panel.planModel(), edited);
        delete editor;
        for (int r = 0; r < 35; ++r)
            QCOMPARE(panel.planModel()->rowAt(r).setting.sparsity, r % 7 == 0 ? 0.8 : 0.5);

        // An edit outside the selection touches only its own row.
        const QModelIndex other = panel.planModel()->index(1, PlanModel::MethodColumn);
        editor = view->itemDelegate()->createEditor(view->viewport(), option, other);
        auto* box = qobject_cast<QComboBox*>(editor);
        QVERIFY(box);
        box->setCurrentIndex(box->findData(int(PlanMethod::Magnitude)));
        view->itemDelegate()->setModelData(box, panel.planModel(), other);
        delete editor;
        QCOMPARE(panel.planModel()->rowAt(1).setting.method, PlanMethod::Magnitude);
        QCOMPARE(panel.planModel()->rowAt(0).setting.method, PlanMethod::SparseGpt);

        // The edit bar on the selection.
        LayerSetting bar;
        bar.method = PlanMethod::Wanda;
        bar.nmN = 2;
        bar.nmM = 4;
        bar.bits = 4;
        panel.setEditBarSetting(bar);
        panel.applyEditBarToSelection();
        for (int r = 0; r < 35; ++r) {
            const LayerSetting& s = panel.planModel()->rowAt(r).setting;
            QCOMPARE(s.method == PlanMethod::Wanda && s.nmM == 4 && s.bits == 4, r % 7 == 0);
        }
    }

    void presetsAndTotals()
    {
        PlanModel model;
        model.setRows(demoRows());
        const qint64 weights = 5 * (64 * 64 + 32 * 64 * 2 + 64 * 64 + 172 * 64 * 3);
        PlanModel::Totals t = model.totals();
        QCOMPARE(t.layers, 35);
        QCOMPARE(t.weights, weights);
        QCOMPARE(t.averageSparsity, 0.5);
        QCOMPARE(t.prunedWeights, weights / 2);
        QCOMPARE(t.denseBytes, weights * 2);
        // Half the weights at fp16, plus a 1-bit mask per weight.
        QCOMPARE(t.estimatedBytes, weights + weights / 8);

        model.keepEndBlocksDense(1);
        t = model.totals();
        QCOMPARE(t.denseLayers, 14);
        for (const PlanRow& r : model.rows())
            QCOMPARE(r.setting.dense(), r.block == 0 || r.block == 4);
        QCOMPARE(t.averageSparsity, 0.5 * 3.0 / 5.0);

        model.splitAttentionMlp(0.25, 0.75, PlanMethod::SparseGpt);
        for (const PlanRow& r : model.rows()) {
            QVERIFY(!r.setting.dense());
            QCOMPARE(r.setting.sparsity, r.isAttention() ? 0.25 : 0.75);
        }
        LayerSetting q = engineDefaultSetting();
        q.bits = 4;
        q.sparsity = 0.0;
        model.applyUniform(q);
        t = model.totals();
        QCOMPARE(t.averageSparsity, 0.0);
        // 4-bit weights, no mask, an fp16 scale and zero per output row.
        qint64 rows = 0;
        for (const PlanRow& r : model.rows())
            rows += r.rows;
        QCOMPARE(t.estimatedBytes, weights / 2 + rows * 4);
    }

    void recipeRoundTrip_data()
    {
        QTest::addColumn<bool>("exact");
        QTest::newRow("compact") << false;
        QTest::newRow("exact rules") << true;
    }

    void recipeRoundTrip()
    {
        QFETCH(bool, exact);
        const RecipeStyle style = exact ? RecipeStyle::Exact : RecipeStyle::Compact;
        PlanModel model;
        model.setRows(demoRows());
        makeMixed(model);
        QTemporaryDir tmp;
        const QString file = tmp.filePath(QStringLiteral("plan.json"));
        QCOMPARE(saveRecipeFile(model.rows(), file, style), QString());

        PlanModel loaded;
        QAbstractItemModelTester tester(&loaded, QAbstractItemModelTester::FailureReportingMode::QtTest);
        loaded.setRows(demoRows());
        QList<LayerSetting> settings;
        QCOMPARE(loadRecipeFile(file, loaded.rows(), &settings), QString());
        QCOMPARE(settings.size(), 35);
        loaded.setSettings(settings);
        for (int r = 0; r < 35; ++r)
            QVERIFY2(loaded.rowAt(r).setting.sameEffect(model.rowAt(r).setting), qPrintable(model.rowAt(r).name));
        // Saving the loaded plan writes the same file.
        QCOMPARE(recipeJson(loaded.rows(), style), recipeJson(model.rows(), style));

        QFile f(file);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray json = f.readAll();
        QCOMPARE(json, recipeJson(model.rows(), style));
        if (!exact) {
            // Defaults are the common setting; one exact-name rule per differing layer only.
            QVERIFY(json.contains("\"defaults\""));
            QCOMPARE(json.count("\"pattern\""), 13);
            QVERIFY(json.contains("\"pattern\": \"model.layers.4.mlp.down_proj\""));
            QVERIFY(json.contains("\"method\": \"dense\""));
            QVERIFY(json.contains("\"nm\": \"2:4\""));
        } else {
            QCOMPARE(json.count("\"pattern\""), 35);
        }
    }

    void globRecipeAppliesLikeTheCli()
    {
        QList<PlanRow> rows = demoRows();
        const QByteArray json = R"({
            "defaults": {"method": "sparsegpt", "sparsity": 0.5, "bits": 16},
            "layers": [
              {"pattern": "model.layers.*.mlp.*", "sparsity": 0.6, "bits": 4},
              {"pattern": "model.layers.0.*", "method": "dense"},
              {"pattern": "*.k_proj", "nm": "2:4"}
            ]})";
        QList<LayerSetting> settings;
        QCOMPARE(applyRecipeJson(json, QStringLiteral("glob.json"), rows, &settings), QString());
        for (int r = 0; r < rows.size(); ++r) {
            const PlanRow& row = rows[r];
            const LayerSetting& s = settings[r];
            if (row.block == 0) {
                // Later rules override earlier ones: the k_proj rule asks for 2:4, so block 0's
                // k_proj is compressed again (with the method in effect, SparseGPT); the rest
                // of block 0 stays dense.
                if (row.kind.endsWith(QLatin1String("k_proj"))) {
                    QVERIFY(!s.dense());
                    QCOMPARE(s.method, PlanMethod::SparseGpt);
                    QCOMPARE(s.nmN, 2);
                    QCOMPARE(s.nmM, 4);
                } else {
                    QVERIFY(s.dense());
                }
                continue;
            }
            const bool mlp = row.kind.startsWith(QLatin1String("mlp."));
            QCOMPARE(s.sparsity, mlp ? 0.6 : 0.5);
            QCOMPARE(s.bits, mlp ? 4 : 16);
            QCOMPARE(s.structured(), row.kind.endsWith(QLatin1String("k_proj")));
        }
    }

    void recipeErrorsAreReadable_data()
    {
        QTest::addColumn<QByteArray>("json");
        QTest::addColumn<QString>("expected");
        QTest::newRow("no match") << QByteArray(R"({"layers": [{"pattern": "encoder.*", "sparsity": 0.5}]})")
                                  << QStringLiteral("matches no linear layer");
        QTest::newRow("bad sparsity") << QByteArray(R"({"defaults": {"sparsity": 1.5}})") << QStringLiteral("sparsity");
        QTest::newRow("unknown field") << QByteArray(R"({"defaults": {"spartsity": 0.5}})") << QStringLiteral("unknown field");
        QTest::newRow("not json") << QByteArray("{ nope") << QStringLiteral("not valid JSON");
    }

    void recipeErrorsAreReadable()
    {
        QFETCH(QByteArray, json);
        QFETCH(QString, expected);
        QList<LayerSetting> settings;
        const QString error = applyRecipeJson(json, QStringLiteral("mine.json"), demoRows(), &settings);
        QVERIFY2(error.contains(expected), qPrintable(error));
        QVERIFY2(error.contains(QStringLiteral("mine.json")), qPrintable(error));
        QVERIFY(!error.contains(QLatin1Char('\n')));
        QVERIFY(settings.isEmpty());
        QCOMPARE(loadRecipeFile(QStringLiteral("/nonexistent/recipe.json"), demoRows(), &settings).isEmpty(), false);
    }
};

QTEST_MAIN(TestPlanModel)
#include "test_plan_model.moc"
