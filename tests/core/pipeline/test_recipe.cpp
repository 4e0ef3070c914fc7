// Recipe parsing, matching and round trip; the error messages name the recipe file.

#include "pipeline/recipe.h"
#include "util/errors.h"

#include <nlohmann/json.hpp>

#include <QTemporaryDir>
#include <QTest>

using namespace sparselab;
using nlohmann::json;

class TestRecipe : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void globMatch_data()
    {
        QTest::addColumn<QString>("pattern");
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("matches");
        QTest::newRow("star middle") << "model.layers.*.mlp.*" << "model.layers.3.mlp.down_proj" << true;
        QTest::newRow("star no attn") << "model.layers.*.mlp.*" << "model.layers.3.self_attn.q_proj" << false;
        QTest::newRow("exact") << "a.b" << "a.b" << true;
        QTest::newRow("question") << "model.layers.?.mlp.up_proj" << "model.layers.12.mlp.up_proj" << false;
        QTest::newRow("question one") << "model.layers.?.mlp.up_proj" << "model.layers.1.mlp.up_proj" << true;
        QTest::newRow("leading star") << "*q_proj" << "model.layers.0.self_attn.q_proj" << true;
        QTest::newRow("empty text") << "*" << "" << true;
        QTest::newRow("backtrack") << "*a*b" << "xaxxbxb" << true;
    }
    void globMatch()
    {
        QFETCH(QString, pattern);
        QFETCH(QString, text);
        QFETCH(bool, matches);
        QCOMPARE(pipeline::globMatch(pattern.toStdString(), text.toStdString()), matches);
    }

    // A later rule that asks for compression overrides an earlier "dense"; one that only
    // adjusts (sym, damp) leaves the layer dense.
    void laterRulesOverrideDense()
    {
        const auto recipe = pipeline::Recipe::fromJson(json::parse(R"({
            "defaults": {"method": "wanda", "sparsity": 0.5},
            "layers": [
                {"pattern": "model.layers.0.*", "method": "dense"},
                {"pattern": "model.layers.0.mlp.*", "sparsity": 0.3},
                {"pattern": "model.layers.0.self_attn.q_proj", "bits": 4},
                {"pattern": "model.layers.0.self_attn.k_proj", "sym": true, "damp": 0.1}
            ]})"), "r.json");
        const auto up = recipe.planFor("model.layers.0.mlp.up_proj");
        QVERIFY(!up.dense);
        QCOMPARE(up.options.method, solve::Method::Wanda);
        QCOMPARE(up.options.sparsity, 0.3);
        const auto q = recipe.planFor("model.layers.0.self_attn.q_proj");
        QVERIFY(!q.dense);
        QCOMPARE(q.options.quant.bits, 4);
        QVERIFY(recipe.planFor("model.layers.0.self_attn.k_proj").dense);
        QVERIFY(recipe.planFor("model.layers.0.self_attn.v_proj").dense);
    }

    // Whole numbers must be whole and in range: 4.7 is not 4, and 4294967298 is not 2.
    void recipeNumbersAreValidated_data()
    {
        QTest::addColumn<QString>("rule");
        QTest::addColumn<QString>("message");
        QTest::newRow("bits wraps around int") << R"("bits": 4294967298)" << "field 'bits' must be in 2..16";
        QTest::newRow("bits fractional") << R"("bits": 4.7)" << "field 'bits' must be a whole number";
        QTest::newRow("bits 12") << R"("bits": 12)" << "bits must be 2..8 or 16";
        QTest::newRow("group fractional") << R"("group": 32.5)" << "field 'group' must be a whole number";
        QTest::newRow("group negative") << R"("group": -32)" << "field 'group' must be in 0..";
        QTest::newRow("blocksize huge") << R"("blocksize": 18446744073709551615)" << "field 'blocksize' must be in 1..";
        QTest::newRow("blocksize string") << R"("blocksize": "128")" << "field 'blocksize' must be a whole number";
    }
    void recipeNumbersAreValidated()
    {
        QFETCH(QString, rule);
        QFETCH(QString, message);
        const std::string text = R"({"defaults": {"sparsity": 0.5, )" + rule.toStdString() + "}}";
        try {
            (void)pipeline::Recipe::fromJson(json::parse(text), "r.json");
            QFAIL("accepted");
        } catch (const InputError& e) {
            QVERIFY2(std::string(e.what()).find(message.toStdString()) != std::string::npos, e.what());
            QVERIFY2(std::string(e.what()).rfind("r.json", 0) == 0, e.what());
        }
    }

    void laterRulesOverrideEarlierOnes()
    {
        const auto recipe = pipeline::Recipe::fromJson(json::parse(R"({
            "defaults": {"method": "sparsegpt", "sparsity": 0.5},
            "layers": [
                {"pattern": "model.layers.*.mlp.*", "nm": "2:4", "bits": 4},
                {"pattern": "model.layers.0.*", "method": "dense"},
                {"pattern": "*down_proj", "method": "wanda", "sparsity": 0.7}
            ]})"), "r.json");
        const auto attn = recipe.planFor("model.layers.1.self_attn.q_proj");
        QVERIFY(!attn.dense);
        QCOMPARE(attn.options.sparsity, 0.5);
        QCOMPARE(attn.options.nmM, 0);
        const auto up = recipe.planFor("model.layers.1.mlp.up_proj");
        QCOMPARE(up.options.nmN, 2);
        QCOMPARE(up.options.nmM, 4);
        QCOMPARE(up.options.quant.bits, 4);
        QVERIFY(recipe.planFor("model.layers.0.mlp.up_proj").dense);
        // Sparsity given without nm in a later rule means unstructured again.
        const auto down = recipe.planFor("model.layers.1.mlp.down_proj");
        QCOMPARE(down.options.method, solve::Method::Wanda);
        QCOMPARE(down.options.sparsity, 0.7);
        QCOMPARE(down.options.nmM, 0);
        QCOMPARE(down.options.quant.bits, 4);
    }

    void gptqFieldsPerLayer()
    {
        // act_order / static_groups / fp16_scale per layer; "rtn" without sparsity = 0.
        const auto recipe = pipeline::Recipe::fromJson(json::parse(R"({
            "defaults": {"method": "sparsegpt", "sparsity": 0.5, "bits": 4, "group": 32, "sym": true},
            "layers": [
                {"pattern": "*mlp*", "act_order": true, "static_groups": true, "fp16_scale": true},
                {"pattern": "*o_proj", "method": "rtn", "bits": 3}
            ]})"), "r.json");
        const auto up = recipe.planFor("model.layers.1.mlp.up_proj").options;
        QVERIFY(up.quant.actOrder && up.quant.staticGroups && up.quant.fp16Scale && up.quant.symmetric);
        QCOMPARE(up.quant.groupSize, int64_t(32));
        const auto q = recipe.planFor("model.layers.1.self_attn.q_proj").options;
        QVERIFY(!q.quant.actOrder && !q.quant.staticGroups && !q.quant.fp16Scale);
        const auto o = recipe.planFor("model.layers.1.self_attn.o_proj").options;
        QCOMPARE(o.method, solve::Method::Rtn);
        QCOMPARE(o.sparsity, 0.0);
        QCOMPARE(o.quant.bits, 3);
        o.validate(64); // a valid rtn plan
        // Round trip through JSON keeps the fields.
        const auto again = pipeline::Recipe::fromJson(recipe.toJson(), "again");
        QVERIFY(again.planFor("model.layers.0.mlp.down_proj").options.quant.actOrder);
        QCOMPARE(again.planFor("model.layers.0.self_attn.o_proj").options.method, solve::Method::Rtn);
        // The grid record of sparselab.json.
        const auto grid = pipeline::quantGridJson(up, false);
        QCOMPARE(grid["bits"].get<int>(), 4);
        QCOMPARE(grid["act_order"].get<bool>(), true);
        QCOMPARE(grid["rounding"].get<std::string>(), std::string("gptq"));
        QVERIFY(pipeline::quantGridJson(up, true).is_null());
        QCOMPARE(pipeline::quantGridJson(o, false)["rounding"].get<std::string>(), std::string("nearest"));
        // A wrong type names the file.
        try {
            (void)pipeline::Recipe::fromJson(json::parse(R"({"defaults": {"act_order": 1}})"), "bad.json");
            QFAIL("no InputError");
        } catch (const InputError& e) {
            QVERIFY2(QString(e.what()).startsWith("bad.json: field 'act_order'"), e.what());
        }
    }

    void roundTripThroughFile()
    {
        QTemporaryDir dir;
        const auto original = pipeline::Recipe::fromJson(json::parse(R"({
            "defaults": {"method": "magnitude", "sparsity": 0.25, "bits": 8, "sym": true, "group": 32},
            "layers": [{"pattern": "*.q_proj", "nm": "4:8", "damp": 0.1, "blocksize": 64},
                       {"pattern": "*.o_proj", "method": "dense"}]})"), "r.json");
        const std::filesystem::path file = dir.filePath("recipe.json").toStdString();
        original.save(file);
        const auto loaded = pipeline::Recipe::load(file);
        QCOMPARE(QString::fromStdString(loaded.toJson().dump()), QString::fromStdString(original.toJson().dump()));
        const auto q = loaded.planFor("model.layers.2.self_attn.q_proj");
        QCOMPARE(q.options.method, solve::Method::Magnitude);
        QCOMPARE(q.options.nmN, 4);
        QCOMPARE(q.options.damp, 0.1);
        QCOMPARE(q.options.blocksize, int64_t(64));
        QCOMPARE(q.options.quant.groupSize, int64_t(32));
        QVERIFY(q.options.quant.symmetric);
        QVERIFY(loaded.planFor("model.layers.2.self_attn.o_proj").dense);
    }

    void badRecipes_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("unknown top field") << R"({"default": {}})" << "unknown field 'default'";
        QTest::newRow("unknown rule field") << R"({"layers": [{"pattern": "*", "sparsty": 0.5}]})" << "unknown field 'sparsty'";
        QTest::newRow("sparsity 1") << R"({"defaults": {"sparsity": 1.0}})" << "sparsity must be in [0, 1)";
        QTest::newRow("negative sparsity") << R"({"defaults": {"sparsity": -0.1}})" << "sparsity must be in [0, 1)";
        QTest::newRow("bad method") << R"({"defaults": {"method": "obs"}})" << "unknown method 'obs'";
        QTest::newRow("bad nm") << R"({"defaults": {"nm": "4:2"}})" << "1 <= N < M";
        QTest::newRow("bad bits") << R"({"defaults": {"bits": 12}})" << "bits must be 2..8 or 16";
        QTest::newRow("rule without pattern") << R"({"layers": [{"sparsity": 0.5}]})" << "needs a 'pattern'";
        QTest::newRow("wrong type") << R"({"defaults": {"sparsity": "half"}})" << "wrong type";
        QTest::newRow("not an object") << R"([1, 2])" << "must be a JSON object";
        QTest::newRow("not json") << R"({"defaults": )" << "not valid JSON";
    }
    void badRecipes()
    {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QTemporaryDir dir;
        const std::filesystem::path file = dir.filePath("bad.json").toStdString();
        {
            std::FILE* f = std::fopen(file.c_str(), "wb");
            std::fputs(text.toUtf8().constData(), f);
            std::fclose(f);
        }
        try {
            (void)pipeline::Recipe::load(file);
            QFAIL("expected InputError");
        } catch (const InputError& e) {
            const QString message = QString::fromUtf8(e.what());
            QVERIFY2(message.contains(QString::fromStdString(file.string())), qPrintable(message));
            QVERIFY2(message.contains(expected), qPrintable(message));
            QVERIFY(!message.contains('\n'));
        }
    }

    void patternMatchingNoLayerIsAnError()
    {
        const auto recipe = pipeline::Recipe::fromJson(
            json::parse(R"({"layers": [{"pattern": "model.layers.*.mlp.w9", "sparsity": 0.5}]})"), "r.json");
        QVERIFY_THROWS_EXCEPTION(InputError,
                                 recipe.validate({"model.layers.0.mlp.up_proj"}, "r.json", {64}));
        recipe.validate({"model.layers.0.mlp.w9"}, "r.json", {64});
    }

    void nmMustDivideTheBlock()
    {
        const auto recipe = pipeline::Recipe::fromJson(json::parse(R"({"defaults": {"nm": "2:3"}})"), "r.json");
        QVERIFY_THROWS_EXCEPTION(InputError, recipe.validate({"a"}, "r.json", {96}));
    }
};

QTEST_GUILESS_MAIN(TestRecipe)
#include "test_recipe.moc"
