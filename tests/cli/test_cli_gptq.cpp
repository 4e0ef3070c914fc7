// GPTQ and GGUF through `sparselab-cli` end to end: solve-layer with act-order against the
// published GPTQ's output, rtn, option errors, and prune (bundled stories260K-hf) with a
// 4-bit symmetric fp16 grid → sparselab.json records the grid, the exported weights are
// exactly on it, `export --type q4_0` packs those layers losslessly (the GGUF read back holds
// the same weights bit for bit), and a .gguf file works as MODEL for info, eval and prune.

#include "io/gguf_import.h"
#include "io/safetensors.h"
#include "solve/solver.h"
#include "testsupport.h"

#include "cli/cli_runner.h"
#include "core/solver_test_data.h"

#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using namespace sparselab;
using sparselab::testing::runCli;

namespace {

QString str(const fs::path& p) { return QString::fromStdString(p.string()); }

torch::Tensor tensorOf(const io::SafetensorsFile& file, const std::string& name)
{
    const io::TensorView v = file.view(name);
    if (v.dtype != io::DType::F32 && v.dtype != io::DType::F16)
        throw std::runtime_error(name + ": expected F32 or F16");
    const auto type = v.dtype == io::DType::F32 ? torch::kFloat32 : torch::kFloat16;
    return torch::from_blob(const_cast<std::byte*>(v.data), v.shape, type).to(torch::kFloat32).clone(); // own the data
}

} // namespace

class TestCliGptq : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString path(const QString& name) const { return m_dir.filePath(name); }

private Q_SLOTS:
    void solveLayerActOrderMatchesGptq()
    {
        const QString out = path("act.safetensors");
        const auto run = runCli({"solve-layer", "--problem", str(testing::solverDataDir() / "problem_d.safetensors"), "--out",
                                 out, "--sparsity", "0", "--bits", "4", "--group", "32", "--sym", "--act-order", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto result = io::SafetensorsFile::open(out.toStdString());
        const auto golden = io::SafetensorsFile::open(testing::solverDataDir() / "gptq_d_4bit_g32_sym_act.safetensors");
        const auto w = tensorOf(result, "weight");
        const auto expected = tensorOf(golden, "weight");
        QVERIFY((w - expected).abs().max().item<double>() <= 1e-5);
        const auto options = nlohmann::json::parse(result.metadata().at("options"));
        QCOMPARE(options["act_order"].get<bool>(), true);
        QCOMPARE(options["static_groups"].get<bool>(), false);
    }

    void rtnNeedsNoSparsity()
    {
        // --method rtn alone means sparsity 0: every value on its row's 3-bit grid, no zeros added.
        const QString out = path("rtn.safetensors");
        const auto problem = str(testing::solverDataDir() / "problem_d.safetensors");
        const auto run = runCli({"solve-layer", "--problem", problem, "--out", out, "--method", "rtn", "--bits", "3",
                                 "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto w = tensorOf(io::SafetensorsFile::open(out.toStdString()), "weight");
        const auto w0 = tensorOf(io::SafetensorsFile::open(problem.toStdString()), "weight");
        const auto maxv = std::get<0>(w0.max(1)).clamp_min(0);
        const auto minv = std::get<0>(w0.min(1)).clamp_max(0);
        const auto scale = ((maxv - minv) / 7.0f).unsqueeze(1);
        const auto zero = (-minv.unsqueeze(1) / scale).round();
        const auto want = scale * ((w0 / scale).round() + zero).clamp(0, 7).sub(zero);
        QVERIFY((w - want).abs().max().item<double>() <= 1e-7);
    }

    void optionErrors_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("act-order with magnitude") << QStringList{"--method", "magnitude", "--bits", "4", "--act-order"}
                                                  << "error: --act-order:";
        QTest::newRow("static groups without group") << QStringList{"--bits", "4", "--static-groups"}
                                                     << "error: --static-groups:";
        QTest::newRow("rtn without bits") << QStringList{"--method", "rtn"} << "error: --method:";
        QTest::newRow("rtn with sparsity") << QStringList{"--method", "rtn", "--bits", "4", "--sparsity", "0.5"}
                                           << "error: --method:";
        QTest::newRow("act-order with N:M") << QStringList{"--nm", "2:4", "--bits", "4", "--act-order"}
                                            << "error: --act-order:";
    }

    void optionErrors()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const QString out = path("never.safetensors");
        const auto run = runCli(QStringList{"solve-layer", "--problem", str(testing::solverDataDir() / "problem_d.safetensors"),
                                            "--out", out}
                                + args);
        QCOMPARE(run.exitCode, 2);
        QVERIFY2(run.stderrText.startsWith(message), qPrintable(run.stderrText));
        QVERIFY(!fs::exists(out.toStdString()));
    }

    void pruneRecordsGridAndExportsLosslessly()
    {
        const QString out = path("gptq4");
        auto run = runCli({"prune", str(testing::demoModelDir()), "--calib", str(testing::demoCalibText()), "--out", out,
                           "--nsamples", "8", "--seqlen", "64", "--sparsity", "0.5", "--bits", "4", "--group", "32",
                           "--sym", "--fp16-scale", "--quiet", "--threads", "2"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        nlohmann::json provenance;
        std::ifstream(fs::path(out.toStdString()) / "sparselab.json") >> provenance;
        const auto folder = io::SafetensorsFile::open(fs::path(out.toStdString()) / "model.safetensors");
        int layers = 0;
        for (const auto& layer : provenance["layers"]) {
            const auto& q = layer["quant"];
            QCOMPARE(q["bits"].get<int>(), 4);
            QCOMPARE(q["group"].get<int>(), 32);
            QCOMPARE(q["sym"].get<bool>(), true);
            QCOMPARE(q["fp16_scale"].get<bool>(), true);
            QCOMPARE(q["rounding"].get<std::string>(), std::string("gptq"));
            // Exactly on the grid: every group of 32 inputs is d·k, d fp16, k in −8..7, and at
            // least half of the values are exact zeros (50 % pruned).
            const auto w = tensorOf(folder, layer["name"].get<std::string>() + ".weight");
            const int64_t cols = w.size(1);
            for (int64_t c0 = 0; c0 < cols; c0 += 32) {
                const auto part = w.narrow(1, c0, std::min<int64_t>(32, cols - c0));
                const auto a = part.abs();
                const auto m = at::where(a > 0, a, torch::full_like(a, INFINITY));
                const auto minNonzero = std::get<0>(m.min(1)); // the smallest nonzero |value| = d·t, t ≤ 8
                bool onGrid = true;
                for (int64_t r = 0; r < part.size(0) && onGrid; ++r) {
                    const float mn = minNonzero[r].item<float>();
                    if (std::isinf(mn))
                        continue;
                    bool any = false;
                    for (int t = 1; t <= 8 && !any; ++t) {
                        const float d = mn / float(t);
                        const auto k = part[r] / d;
                        any = float(c10::Half(d)) == d && torch::equal(k, k.round()) && k.min().item<float>() >= -8
                            && k.max().item<float>() <= 7;
                    }
                    onGrid = any;
                }
                QVERIFY2(onGrid, qPrintable(QString::fromStdString(layer["name"].get<std::string>())));
            }
            QVERIFY((w == 0).to(torch::kDouble).mean().item<double>() >= 0.5);
            ++layers;
        }
        QCOMPARE(layers, 35);

        // Q4_0 export: the 30 layers whose width is a multiple of 32 come from their grids
        // (down_proj, width 172, stays F16: the documented fallback).
        const QString gguf = path("gptq4.gguf");
        run = runCli({"export", out, "--gguf", gguf, "--type", "q4_0", "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto summary = nlohmann::json::parse(run.stdoutText.toStdString());
        QCOMPARE(summary["lossless_grids"].get<int>(), 30);
        QCOMPARE(summary["tensor_types"]["F16"].get<int>(), 5);
        // Read back: the Q4_0 layers bit for bit (Q4_0 decodes to d·k exactly); the F16
        // fallback layers as the weights rounded to fp16 (d·k needs up to 14 significant bits).
        const fs::path imported = fs::path(m_dir.path().toStdString()) / "imported";
        io::importGgufAsHfFolder(gguf.toStdString(), imported);
        const auto back = io::SafetensorsFile::open(imported / "model.safetensors");
        for (const auto& layer : provenance["layers"]) {
            const std::string name = layer["name"].get<std::string>() + ".weight";
            const auto original = tensorOf(folder, name);
            const auto expected = original.size(1) % 32 == 0 ? original : original.to(torch::kHalf).to(torch::kFloat);
            QVERIFY2(torch::equal(tensorOf(back, name), expected), name.c_str());
        }
    }

    void ggufAsModel()
    {
        // F32 export → eval of the .gguf gives the folder's perplexity exactly; info and prune
        // take the .gguf too, and prune records it as the source.
        const QString gguf = path("demo_f32.gguf");
        auto run = runCli({"export", str(testing::demoModelDir()), "--gguf", gguf, "--type", "f32", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        auto evalOf = [&](const QString& model) {
            const auto r = runCli({"eval", model, "--text", str(testing::demoEvalText()), "--seqlen", "128",
                                   "--max-windows", "8", "--json", "--quiet"});
            if (r.exitCode != 0)
                qWarning("%s", qPrintable(r.stderrText));
            return r.exitCode == 0 ? nlohmann::json::parse(r.stdoutText.toStdString())["perplexity"].get<double>() : -1.0;
        };
        const double fromFolder = evalOf(str(testing::demoModelDir()));
        const double fromGguf = evalOf(gguf);
        QVERIFY(fromFolder > 1.0);
        QCOMPARE(fromGguf, fromFolder);

        run = runCli({"info", gguf, "--json"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));

        const QString out = path("from_gguf");
        run = runCli({"prune", gguf, "--calib", str(testing::demoCalibText()), "--out", out, "--nsamples", "4",
                      "--seqlen", "64", "--sparsity", "0.5", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        nlohmann::json provenance;
        std::ifstream(fs::path(out.toStdString()) / "sparselab.json") >> provenance;
        QCOMPARE(provenance["source_model"]["gguf"].get<std::string>(), fs::absolute(gguf.toStdString()).string());
    }

    void badGgufAsModel()
    {
        // A file with the GGUF magic but a bad version: one clear line naming it, exit 2.
        const QString bad = path("bad.gguf");
        {
            std::ofstream f(bad.toStdString(), std::ios::binary);
            const char header[] = {'G', 'G', 'U', 'F', 9, 0, 0, 0};
            f.write(header, sizeof header);
            const uint64_t zeros[2] = {0, 0};
            f.write(reinterpret_cast<const char*>(zeros), sizeof zeros);
        }
        const auto run = runCli({"eval", bad, "--text", str(testing::demoEvalText())});
        QCOMPARE(run.exitCode, 2);
        QVERIFY2(run.stderrText.contains("bad.gguf") && run.stderrText.count('\n') == 1, qPrintable(run.stderrText));
    }
};

QTEST_GUILESS_MAIN(TestCliGptq)
#include "test_cli_gptq.moc"
