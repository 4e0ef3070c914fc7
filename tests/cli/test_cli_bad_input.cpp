// The bad-input catalogue of the CLI: every malformed input gives exit code 2, ONE line on
// stderr that names the offending file or option, and leaves no output behind. It covers
// every reader (safetensors, shard index, config.json, tokenizer.json, tokenizer.model,
// GGUF, recipe, text files) and the options of each command, JSON nested too deep and
// special files (FIFOs, /dev/zero) and files over the size caps given as inputs.
// Inputs are built in a temporary folder from the bundled demo model.

#include "testsupport.h"

#include "cli/cli_runner.h"

#include <QDir>
#include <QProcess>
#include <QRegularExpression>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <functional>
#include <limits>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/stat.h>

namespace fs = std::filesystem;

namespace {

QByteArray safetensorsBytes(const std::string& header, const QByteArray& data)
{
    QByteArray bytes;
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i)
        bytes.append(char((n >> (8 * i)) & 0xff));
    bytes.append(header.data(), qsizetype(header.size()));
    bytes.append(data);
    return bytes;
}

// A GGUF header: magic, version, tensor and key/value counts, then `rest`.
QByteArray ggufBytes(const QByteArray& magic, uint32_t version, uint64_t tensors, uint64_t kvs,
                     const QByteArray& rest = {})
{
    QByteArray bytes = magic;
    for (int i = 0; i < 4; ++i)
        bytes.append(char((version >> (8 * i)) & 0xff));
    for (const uint64_t n : {tensors, kvs})
        for (int i = 0; i < 8; ++i)
            bytes.append(char((n >> (8 * i)) & 0xff));
    bytes.append(rest);
    return bytes;
}

void writeFile(const QString& path, const QByteArray& bytes)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    f.write(bytes);
}

// A model folder: the demo's config and tokenizer with a replacement weights file.
QString makeModel(const QTemporaryDir& dir, const QString& name, const QByteArray& safetensors)
{
    const QString folder = dir.filePath(name);
    QDir().mkpath(folder);
    const QString demo = QString::fromStdString(sparselab::testing::demoModelDir().string());
    for (const char* file : {"config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
        QFile::copy(demo + "/" + file, folder + "/" + file);
    if (!safetensors.isNull())
        writeFile(folder + "/model.safetensors", safetensors);
    return folder;
}

// A model folder: the demo's files with its config.json changed by `edit`.
QString makeModelWithConfig(const QTemporaryDir& dir, const QString& name,
                            const std::function<void(nlohmann::json&)>& edit)
{
    const QString folder = makeModel(dir, name, QByteArray());
    const QString demo = QString::fromStdString(sparselab::testing::demoModelDir().string());
    QFile::copy(demo + "/model.safetensors", folder + "/model.safetensors");
    QFile config(demo + "/config.json");
    if (!config.open(QIODevice::ReadOnly))
        return {};
    auto json = nlohmann::json::parse(config.readAll().toStdString());
    edit(json);
    writeFile(folder + "/config.json", QByteArray::fromStdString(json.dump()));
    return folder;
}

using sparselab::testing::runCli;

// The last non-empty line on stderr (progress lines may precede the error).
QString errorLine(const QString& text)
{
    const auto lines = text.split('\n', Qt::SkipEmptyParts);
    return lines.isEmpty() ? QString() : lines.last().trimmed();
}

} // namespace

class TestCliBadInput : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_demo;
    QString m_eval;
    QString m_calib;

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_demo = QString::fromStdString(sparselab::testing::demoModelDir().string());
        m_eval = QString::fromStdString(sparselab::testing::demoEvalText().string());
        m_calib = QString::fromStdString(sparselab::testing::demoCalibText().string());
    }

    void catalogue_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("mustName");    // substring the error line must contain
        QTest::addColumn<QString>("mustNotExist"); // output that must not have been written

        const QString d = m_dir.path();
        const QString out = d + "/out-never-written";
        const QByteArray validData(16, '\0');

        // --- model folders -----------------------------------------------------------------
        const QString noConfig = d + "/no-config";
        QDir().mkpath(noConfig);
        QTest::newRow("missing config.json") << QStringList{"info", noConfig} << "config.json" << "";

        const QString badJson = makeModel(m_dir, "bad-json", QByteArray());
        writeFile(badJson + "/config.json", "{\"hidden_size\": 64,");
        QTest::newRow("malformed config.json") << QStringList{"info", badJson} << "config.json" << "";

        const QString missingField = makeModel(m_dir, "missing-field", QByteArray());
        writeFile(missingField + "/config.json", R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})");
        QTest::newRow("config.json missing fields") << QStringList{"info", missingField} << "config.json" << "";

        const QString unsupported = makeModel(m_dir, "unsupported", QByteArray());
        writeFile(unsupported + "/config.json", R"({"architectures": ["BertForMaskedLM"], "model_type": "bert"})");
        QTest::newRow("unsupported architecture") << QStringList{"info", unsupported} << "config.json" << "";

        QTest::newRow("model folder does not exist")
            << QStringList{"info", d + "/nowhere"} << "nowhere" << "";

        const QString noWeights = makeModel(m_dir, "no-weights", QByteArray());
        QTest::newRow("no safetensors") << QStringList{"info", noWeights} << "no-weights" << "";

        // --- safetensors ---------------------------------------------------------------------
        {
            QByteArray bytes;
            const uint64_t n = 1u << 30;
            for (int i = 0; i < 8; ++i)
                bytes.append(char((n >> (8 * i)) & 0xff));
            bytes.append("{}");
            const QString m = makeModel(m_dir, "header-past-end", bytes);
            QTest::newRow("header length past end of file") << QStringList{"info", m} << "model.safetensors" << "";
        }
        {
            const QString m = makeModel(m_dir, "overlap", safetensorsBytes(
                R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                validData));
            QTest::newRow("overlapping offsets") << QStringList{"info", m} << "model.safetensors" << "";
        }
        {
            const QString m = makeModel(m_dir, "out-of-range", safetensorsBytes(
                R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", validData));
            QTest::newRow("offsets out of range") << QStringList{"info", m} << "model.safetensors" << "";
        }
        {
            const QString m = makeModel(m_dir, "bad-size", safetensorsBytes(
                R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", validData));
            QTest::newRow("shape x dtype != byte length") << QStringList{"info", m} << "model.safetensors" << "";
        }
        {
            const QString m = makeModel(m_dir, "bad-dtype", safetensorsBytes(
                R"({"a":{"dtype":"F8_E9","shape":[4],"data_offsets":[0,16]}})", validData));
            QTest::newRow("unknown dtype") << QStringList{"info", m} << "model.safetensors" << "";
        }
        {
            const QString m = makeModel(m_dir, "header-not-json", safetensorsBytes("{not json", validData));
            QTest::newRow("header not JSON") << QStringList{"info", m} << "model.safetensors" << "";
        }
        {
            const QString m = makeModel(m_dir, "missing-tensor", safetensorsBytes(
                R"({"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", validData));
            QTest::newRow("tensor the config needs is missing") << QStringList{"info", m} << "missing-tensor" << "";
        }
        {
            const QString m = makeModel(m_dir, "escaping-index", QByteArray());
            writeFile(m + "/model.safetensors.index.json",
                      R"({"weight_map": {"model.norm.weight": "../../etc/passwd"}})");
            QTest::newRow("shard index pointing outside the folder")
                << QStringList{"info", m} << "model.safetensors.index.json" << "";
        }
        {
            const QString m = makeModel(m_dir, "absolute-index", QByteArray());
            writeFile(m + "/model.safetensors.index.json", R"({"weight_map": {"model.norm.weight": "/etc/passwd"}})");
            QTest::newRow("shard index with an absolute path")
                << QStringList{"info", m} << "model.safetensors.index.json" << "";
        }

        // --- texts and eval options --------------------------------------------------------
        const QString empty = d + "/empty.txt";
        writeFile(empty, "");
        QTest::newRow("empty evaluation text") << QStringList{"eval", m_demo, "--text", empty} << "empty.txt" << "";
        const QString shortText = d + "/short.txt";
        writeFile(shortText, "Once upon a time there was a cat.");
        QTest::newRow("text shorter than one window")
            << QStringList{"eval", m_demo, "--text", shortText, "--seqlen", "256"} << "short.txt" << "";
        QTest::newRow("evaluation text missing")
            << QStringList{"eval", m_demo, "--text", d + "/absent.txt"} << "absent.txt" << "";
        QTest::newRow("seqlen beyond the model maximum")
            << QStringList{"eval", m_demo, "--text", m_eval, "--seqlen", "4096"} << "--seqlen" << "";
        QTest::newRow("seqlen not a number")
            << QStringList{"eval", m_demo, "--text", m_eval, "--seqlen", "many"} << "--seqlen" << "";
        QTest::newRow("unknown option") << QStringList{"eval", m_demo, "--colour", "red"} << "--colour" << "";

        // --- prune -------------------------------------------------------------------------
        const QStringList prune = {"prune", m_demo, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64"};
        QTest::newRow("prune: sparsity 1.0") << (prune + QStringList{"--sparsity", "1.0", "--out", out}) << "--sparsity" << out;
        QTest::newRow("prune: sparsity negative") << (prune + QStringList{"--sparsity", "-0.5", "--out", out}) << "--sparsity" << out;
        QTest::newRow("prune: N:M with N >= M") << (prune + QStringList{"--nm", "4:4", "--out", out}) << "--nm" << out;
        QTest::newRow("prune: M not dividing the block") << (prune + QStringList{"--nm", "2:3", "--out", out}) << "--nm" << out;
        QTest::newRow("prune: unknown method") << (prune + QStringList{"--method", "obs", "--out", out}) << "obs" << out;
        QTest::newRow("prune: bits out of range") << (prune + QStringList{"--bits", "12", "--out", out}) << "--bits" << out;
        QTest::newRow("prune: calibration text shorter than one window")
            << QStringList{"prune", m_demo, "--calib", shortText, "--seqlen", "256", "--out", out} << "short.txt" << out;
        QTest::newRow("prune: empty calibration text")
            << QStringList{"prune", m_demo, "--calib", empty, "--out", out} << "empty.txt" << out;
        QTest::newRow("prune: output exists")
            << (prune + QStringList{"--out", d}) << d << "";
        QTest::newRow("prune: output inside the model folder")
            << (prune + QStringList{"--out", m_demo + "/pruned"}) << "pruned" << m_demo + "/pruned";
        QTest::newRow("prune: missing --out") << prune << "--out" << "";
        {
            // transformers' small Llama (vocabulary 320) with the demo's tokenizer (512 pieces):
            // ids of the text fall outside the model's vocabulary. Every command that draws
            // calibration windows refuses it, naming the text (this died with "index out of
            // range" and a backtrace in prune and sensitivity).
            const QString mixed = d + "/mixed-tokenizer";
            QDir().mkpath(mixed);
            const QString hf = QString::fromStdString((sparselab::testing::testDataDir() / "models" / "hf-llama").string());
            for (const char* file : {"config.json", "model.safetensors"})
                QFile::copy(hf + "/" + file, mixed + "/" + file);
            for (const char* file : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
                QFile::copy(m_demo + "/" + file, mixed + "/" + file);
            const QString calibName = QFileInfo(m_calib).fileName() + ": token id";
            QTest::newRow("prune: tokenizer of another model")
                << QStringList{"prune", mixed, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64", "--out", out}
                << calibName << out;
            QTest::newRow("sensitivity: tokenizer of another model")
                << QStringList{"sensitivity", mixed, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64", "--out",
                               d + "/never-sens.json"}
                << calibName << d + "/never-sens.json";
        }
        QTest::newRow("no command at all") << QStringList{} << "no command given" << "";
        QTest::newRow("plan: window longer than the model's positions")
            << QStringList{"plan", m_demo, "--seqlen", "4096"} << "--seqlen" << "";
        QTest::newRow("prune: empty --out") << (prune + QStringList{"--out", ""}) << "--out" << "";
        {
            // Found before the work starts (the export's temporary sibling is made and removed).
            const QString tooLong = d + "/" + QString(300, QChar('n'));
            QTest::newRow("prune: output name too long")
                << (prune + QStringList{"--out", tooLong}) << "cannot be written" << tooLong;
        }
        QTest::newRow("prune: layers matching nothing")
            << (prune + QStringList{"--layers", "model.layers.*.nothing", "--out", out}) << "--layers" << out;
        {
            const QString recipe = d + "/no-layer-recipe.json";
            writeFile(recipe, R"({"layers": [{"pattern": "transformer.h.*", "sparsity": 0.5}]})");
            QTest::newRow("prune: recipe naming no layer")
                << (prune + QStringList{"--recipe", recipe, "--out", out}) << "no-layer-recipe.json" << out;
            const QString unknownField = d + "/unknown-field-recipe.json";
            writeFile(unknownField, R"({"defaults": {"sparsity": 0.5, "speed": "fast"}})");
            QTest::newRow("prune: recipe with an unknown field")
                << (prune + QStringList{"--recipe", unknownField, "--out", out}) << "unknown-field-recipe.json" << out;
            const QString wrapping = d + "/wrapping-bits-recipe.json";
            writeFile(wrapping, R"({"defaults": {"sparsity": 0.5, "bits": 4294967298}})");
            QTest::newRow("prune: recipe bits that wrap around int")
                << (prune + QStringList{"--recipe", wrapping, "--out", out}) << "wrapping-bits-recipe.json" << out;
            const QString fractional = d + "/fractional-bits-recipe.json";
            writeFile(fractional, R"({"defaults": {"sparsity": 0.5, "bits": 4.7}})");
            QTest::newRow("prune: recipe bits 4.7")
                << (prune + QStringList{"--recipe", fractional, "--out", out}) << "fractional-bits-recipe.json" << out;
            const QString notJson = d + "/broken-recipe.json";
            writeFile(notJson, "{");
            QTest::newRow("prune: recipe not JSON")
                << (prune + QStringList{"--recipe", notJson, "--out", out}) << "broken-recipe.json" << out;
        }

        // --- absurd sizes in config.json: refused naming the field, before anything is allocated
        // (2^62 layers died with "vector::_M_default_append", 2^31 with std::bad_alloc, exit 1).
        {
            const auto withField = [&](const QString& name, const QString& key, const QString& value) {
                return makeModelWithConfig(m_dir, name, [&](nlohmann::json& config) {
                    config[key.toStdString()] = nlohmann::json::parse(value.toStdString());
                });
            };
            QTest::newRow("info: num_hidden_layers 2^62")
                << QStringList{"info", withField("layers-2e62", "num_hidden_layers", "4611686018427387904")}
                << "config.json: field 'num_hidden_layers' is 4611686018427387904, above the largest" << "";
            QTest::newRow("eval: num_hidden_layers 2^31")
                << QStringList{"eval", withField("layers-2e31", "num_hidden_layers", "2147483648"), "--text", m_eval,
                               "--seqlen", "64"}
                << "field 'num_hidden_layers' is 2147483648" << "";
            QTest::newRow("prune: vocab_size 2^31 - 1")
                << QStringList{"prune", withField("vocab-2e31", "vocab_size", "2147483647"), "--calib", m_calib,
                               "--nsamples", "4", "--seqlen", "64", "--out", out}
                << "field 'vocab_size' is 2147483647" << out;
            QTest::newRow("plan: hidden_size 2^62")
                << QStringList{"plan", withField("hidden-2e62", "hidden_size", "4611686018427387904")}
                << "field 'hidden_size' is 4611686018427387904" << "";
            QTest::newRow("info: intermediate_size above INT64_MAX")
                << QStringList{"info", withField("mlp-2e64", "intermediate_size", "18446744073709551615")}
                << "field 'intermediate_size' is 18446744073709551615" << "";
            QTest::newRow("info: zero attention heads")
                << QStringList{"info", withField("heads-0", "num_attention_heads", "0")}
                << "field 'num_attention_heads' must be a positive integer" << "";
        }

        // --- scratch folder: a missing or unusable TMPDIR is one line naming it, before the work
        // (it was "internal error: filesystem error: temp_directory_path", exit 1).
        {
            const QString gguf = d + "/scratch-demo.gguf";
            QVERIFY(runCli({"export", m_demo, "--gguf", gguf, "--quiet"}).exitCode == 0);
            QTest::newRow("GGUF model with TMPDIR missing")
                << QStringList{"env:TMPDIR=" + d + "/no-such-folder", "info", gguf}
                << "TMPDIR (" + d + "/no-such-folder): No such file or directory" << "";
            QTest::newRow("GGUF model with TMPDIR a file")
                << QStringList{"env:TMPDIR=" + gguf, "eval", gguf, "--text", m_eval, "--seqlen", "64"}
                << "TMPDIR (" + gguf + "): not a folder" << "";
            QTest::newRow("prune --stream with TMPDIR missing")
                << QStringList{"env:TMPDIR=" + d + "/no-such-folder", "prune", m_demo, "--calib", m_calib,
                               "--nsamples", "4", "--seqlen", "64", "--stream", "--out", out}
                << "TMPDIR (" + d + "/no-such-folder)" << out;
        }

        // --- a compressed folder's sparselab.json with wrongly typed fields (report read them
        // with nlohmann's value() and died with a JSON type_error, exit 1).
        {
            const QString pruned = d + "/typed-pruned";
            QVERIFY(runCli({"prune", m_demo, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64", "--out", pruned,
                            "--quiet"}).exitCode == 0);
            QFile provFile(pruned + "/sparselab.json");
            QVERIFY(provFile.open(QIODevice::ReadOnly));
            const auto provenance = nlohmann::json::parse(provFile.readAll().toStdString());
            const auto withProvenance = [&](const QString& name, const std::function<void(nlohmann::json&)>& edit) {
                const QString folder = d + "/" + name;
                QDir().mkpath(folder);
                for (const QString& f : QDir(pruned).entryList(QDir::Files))
                    QFile::copy(pruned + "/" + f, folder + "/" + f);
                nlohmann::json p = provenance;
                edit(p);
                QFile::remove(folder + "/sparselab.json");
                writeFile(folder + "/sparselab.json", QByteArray::fromStdString(p.dump()));
                return QStringList{"report", "--dense", m_demo, "--compressed", folder, "--eval", m_eval, "--seqlen",
                                   "64", "--max-windows", "2", "--html", d + "/never-typed.html"};
            };
            QTest::newRow("report: sparselab.json linear_sparsity a string")
                << withProvenance("typed-sparsity", [](nlohmann::json& p) { p["linear_sparsity"] = "half"; })
                << "sparselab.json: field 'linear_sparsity' must be a finite number" << d + "/never-typed.html";
            QTest::newRow("report: sparselab.json recipe null")
                << withProvenance("typed-recipe", [](nlohmann::json& p) { p["recipe"] = nullptr; })
                << "sparselab.json: field 'recipe' must be an object" << d + "/never-typed.html";
            QTest::newRow("report: sparselab.json layer bits a string")
                << withProvenance("typed-bits", [](nlohmann::json& p) { p["layers"][3]["bits"] = "4"; })
                << "sparselab.json: field 'layers[3].bits' must be an integer" << d + "/never-typed.html";
            QTest::newRow("report: sparselab.json layer rows 2^40")
                << withProvenance("typed-rows", [](nlohmann::json& p) { p["layers"][0]["rows"] = int64_t(1) << 40; })
                << "sparselab.json: field 'layers[0].rows' is 1099511627776" << d + "/never-typed.html";
        }

        // --- solve-layer ------------------------------------------------------------------------
        const QString lout = d + "/layer-out.safetensors";
        {
            // weight [2,4] with a NaN, inputs [4,4].
            QByteArray data(2 * 4 * 4 + 4 * 4 * 4, '\0');
            float* f = reinterpret_cast<float*>(data.data());
            for (int i = 0; i < 2 * 4 + 16; ++i)
                f[i] = float(i % 5) - 1.5f;
            f[3] = std::numeric_limits<float>::quiet_NaN();
            const QString p = d + "/nan-weight.safetensors";
            writeFile(p, safetensorsBytes(
                R"({"weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]},"inputs":{"dtype":"F32","shape":[4,4],"data_offsets":[32,96]}})",
                data));
            // The demo model with one NaN in a weight: every command that reads the model
            // refuses it when it reads it, naming the file and the tensor.
            QFile demoWeights(m_demo + "/model.safetensors");
            QVERIFY(demoWeights.open(QIODevice::ReadOnly));
            QByteArray bytes = demoWeights.readAll();
            uint64_t headerLength = 0;
            std::memcpy(&headerLength, bytes.constData(), 8);
            const auto header = nlohmann::json::parse(bytes.mid(8, int(headerLength)).toStdString());
            const auto offset = header.at("model.layers.0.mlp.up_proj.weight").at("data_offsets").at(0).get<int64_t>();
            const float nan = std::numeric_limits<float>::quiet_NaN();
            std::memcpy(bytes.data() + 8 + headerLength + offset + 4 * 17, &nan, 4);
            const QString nanModel = makeModel(m_dir, "nan-model", bytes);
            const QString nanTensor = "model.layers.0.mlp.up_proj.weight' holds NaN or Inf";
            QTest::newRow("eval: NaN in a weight")
                << QStringList{"eval", nanModel, "--text", m_eval, "--seqlen", "64"} << nanTensor << "";
            QTest::newRow("prune: NaN in a weight")
                << QStringList{"prune", nanModel, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64", "--out", out}
                << nanTensor << out;
            QTest::newRow("prune --stream: NaN in a weight")
                << QStringList{"prune", nanModel, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64", "--stream",
                               "--out", out}
                << nanTensor << out;
            QTest::newRow("export --gguf q8_0: NaN in a weight")
                << QStringList{"export", nanModel, "--gguf", d + "/nan.gguf", "--type", "q8_0"} << nanTensor
                << d + "/nan.gguf";
            QTest::newRow("solve-layer: non-finite weight")
                << QStringList{"solve-layer", "--problem", p, "--out", lout} << "nan-weight.safetensors" << lout;
            f[3] = 1.0f;
            f[12] = std::numeric_limits<float>::infinity();
            const QString q = d + "/inf-input.safetensors";
            writeFile(q, safetensorsBytes(
                R"({"weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]},"inputs":{"dtype":"F32","shape":[4,4],"data_offsets":[32,96]}})",
                data));
            // The message names the inputs, not the Hessian built from them (which is checked
            // first): on the plain solver and on the LibTorch one (--bits).
            const QString nonFiniteInputs = "inf-input.safetensors: tensor inputs: contains non-finite values";
            QTest::newRow("solve-layer: non-finite inputs")
                << QStringList{"solve-layer", "--problem", q, "--out", lout} << nonFiniteInputs << lout;
            QTest::newRow("solve-layer: non-finite inputs, quantized")
                << QStringList{"solve-layer", "--problem", q, "--out", lout, "--bits", "4"} << nonFiniteInputs << lout;
            // Finite inputs whose squares overflow float32: the Hessian is Inf where they are.
            f[12] = 3e25f;
            const QString huge = d + "/huge-input.safetensors";
            writeFile(huge, safetensorsBytes(
                R"({"weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]},"inputs":{"dtype":"F32","shape":[4,4],"data_offsets":[32,96]}})",
                data));
            QTest::newRow("solve-layer: inputs whose Hessian overflows")
                << QStringList{"solve-layer", "--problem", huge, "--out", lout}
                << "huge-input.safetensors: tensor inputs: too large" << lout;
        }
        {
            // A negative-definite "Hessian" stays singular whatever the damping.
            QByteArray data(2 * 4 * 4 + 4 * 4 * 4, '\0');
            float* f = reinterpret_cast<float*>(data.data());
            for (int i = 0; i < 8; ++i)
                f[i] = 0.25f * float(i + 1);
            for (int i = 0; i < 4; ++i)
                f[8 + i * 4 + i] = -1.0f;
            const QString p = d + "/singular.safetensors";
            writeFile(p, safetensorsBytes(
                R"({"weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]},"hessian":{"dtype":"F32","shape":[4,4],"data_offsets":[32,96]}})",
                data));
            QTest::newRow("solve-layer: Hessian singular after damping")
                << QStringList{"solve-layer", "--problem", p, "--out", lout} << "singular.safetensors" << lout;
            QTest::newRow("solve-layer: M not dividing the block")
                << QStringList{"solve-layer", "--problem", p, "--out", lout, "--nm", "2:3"} << "--nm" << lout;
            QTest::newRow("solve-layer: sparsity outside [0,1)")
                << QStringList{"solve-layer", "--problem", p, "--out", lout, "--sparsity", "1.5"} << "--sparsity" << lout;
            QTest::newRow("solve-layer: problem file missing")
                << QStringList{"solve-layer", "--problem", d + "/none.safetensors", "--out", lout} << "none.safetensors" << lout;
            const QString noInputs = d + "/no-inputs.safetensors";
            writeFile(noInputs, safetensorsBytes(R"({"weight":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}})",
                                                 data.left(32)));
            QTest::newRow("solve-layer: neither inputs nor hessian")
                << QStringList{"solve-layer", "--problem", noInputs, "--out", lout} << "no-inputs.safetensors" << lout;
        }

        // --- tokenizers -----------------------------------------------------------------------
        {
            const auto tokModel = [&](const QString& name, const QByteArray* tokenizerJson,
                                      const QByteArray* tokenizerModel) {
                const QString m = makeModel(m_dir, name, QByteArray());
                QFile::copy(m_demo + "/model.safetensors", m + "/model.safetensors");
                QFile::remove(m + "/tokenizer.model");
                if (tokenizerJson)
                    writeFile(m + "/tokenizer.json", *tokenizerJson);
                if (tokenizerModel)
                    writeFile(m + "/tokenizer.model", *tokenizerModel);
                return m;
            };
            const QStringList evalArgs = {"--text", m_eval, "--seqlen", "64"};
            const QByteArray notJson = "{\"model\": {\"type\": \"BPE\",";
            QTest::newRow("tokenizer.json not JSON")
                << (QStringList{"eval", tokModel("tokjson-broken", &notJson, nullptr)} + evalArgs) << "tokenizer.json" << "";
            const QByteArray unigram = R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})";
            QTest::newRow("tokenizer.json Unigram model")
                << (QStringList{"eval", tokModel("tokjson-unigram", &unigram, nullptr)} + evalArgs) << "tokenizer.json" << "";
            const QByteArray badVocab = R"({"model": {"type": "BPE", "vocab": [1, 2, 3], "merges": []}})";
            QTest::newRow("tokenizer.json vocab not an object")
                << (QStringList{"eval", tokModel("tokjson-vocab", &badVocab, nullptr)} + evalArgs) << "tokenizer.json" << "";
            const QByteArray badMerge = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})";
            QTest::newRow("tokenizer.json merge of unknown tokens")
                << (QStringList{"eval", tokModel("tokjson-merge", &badMerge, nullptr)} + evalArgs) << "tokenizer.json" << "";
            const QByteArray garbage("\x0a\xff\xff\xff\xff\x0f garbage", 16);
            QTest::newRow("tokenizer.model not a SentencePiece model")
                << (QStringList{"eval", tokModel("tokmodel-garbage", nullptr, &garbage)} + evalArgs) << "tokenizer.model" << "";
            QFile demoTok(m_demo + "/tokenizer.model");
            QVERIFY(demoTok.open(QIODevice::ReadOnly));
            const QByteArray truncated = demoTok.readAll().left(1000);
            QTest::newRow("tokenizer.model truncated")
                << (QStringList{"eval", tokModel("tokmodel-truncated", nullptr, &truncated)} + evalArgs) << "tokenizer.model" << "";
            const QByteArray emptyBytes("");
            QTest::newRow("tokenizer.model empty")
                << (QStringList{"eval", tokModel("tokmodel-empty", nullptr, &emptyBytes)} + evalArgs) << "tokenizer.model" << "";
            QTest::newRow("no tokenizer files")
                << (QStringList{"eval", tokModel("tok-none", nullptr, nullptr)} + evalArgs) << "tok-none" << "";
        }

        // --- GGUF (export reads a .gguf model too) -------------------------------------------
        {
            const QString gout = d + "/never.gguf";
            const auto gguf = [&](const QString& name, const QByteArray& bytes) {
                const QString path = d + "/" + name;
                writeFile(path, bytes);
                return QStringList{"export", path, "--gguf", gout};
            };
            QTest::newRow("GGUF truncated header") << gguf("trunc.gguf", QByteArray("GGUF\x03\x00", 6)) << "trunc.gguf" << gout;
            QTest::newRow("GGUF version 1") << gguf("v1.gguf", ggufBytes("GGUF", 1, 0, 0)) << "v1.gguf" << gout;
            QTest::newRow("GGUF tensor count beyond the file")
                << gguf("many.gguf", ggufBytes("GGUF", 3, uint64_t(1) << 40, 0)) << "many.gguf" << gout;
            // One key whose string length runs past the end of the file.
            QByteArray key;
            for (int i = 0; i < 8; ++i)
                key.append(char(i == 0 ? 0x40 : 0));
            key.append("general");
            QTest::newRow("GGUF key string past the end")
                << gguf("key.gguf", ggufBytes("GGUF", 3, 0, 1, key)) << "key.gguf" << gout;
            QTest::newRow("GGUF without llama metadata")
                << gguf("empty-kv.gguf", ggufBytes("GGUF", 3, 0, 0)) << "empty-kv.gguf" << gout;
            QTest::newRow("export: unknown --type")
                << QStringList{"export", m_demo, "--gguf", gout, "--type", "q5_k"} << "--type" << gout;
        }

        // --- model files are data, never code ------------------------------------------------
        {
            const QString pickleOnly = makeModel(m_dir, "pickle-only", QByteArray());
            writeFile(pickleOnly + "/pytorch_model.bin", QByteArray("PK\x03\x04 not loaded", 20));
            QTest::newRow("pytorch_model.bin only (pickle refused)")
                << QStringList{"info", pickleOnly} << "pytorch_model.bin" << "";
            QTest::newRow("MODEL is a .bin file (pickle refused)")
                << QStringList{"info", pickleOnly + "/pytorch_model.bin"} << "pytorch_model.bin" << "";
            const QString binShard = makeModel(m_dir, "bin-shard", QByteArray());
            writeFile(binShard + "/model.safetensors.index.json",
                      R"({"weight_map": {"model.norm.weight": "pytorch_model-00001-of-00002.bin"}})");
            QTest::newRow("shard index naming a .bin shard")
                << QStringList{"info", binShard} << "model.safetensors.index.json" << "";
            const QString missingShard = makeModel(m_dir, "missing-shard", QByteArray());
            writeFile(missingShard + "/model.safetensors.index.json",
                      R"({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}})");
            QTest::newRow("shard index naming a missing shard")
                << QStringList{"info", missingShard} << "model.safetensors.index.json" << "";
            const QString brokenIndex = makeModel(m_dir, "broken-index", QByteArray());
            writeFile(brokenIndex + "/model.safetensors.index.json", "{\"weight_map\": ");
            QTest::newRow("shard index not JSON")
                << QStringList{"info", brokenIndex} << "model.safetensors.index.json" << "";
        }

        // --- unbounded JSON: every JSON is read with a depth limit (256) and a size limit -----
        {
            const QString demoConfig = [&] {
                QFile f(m_demo + "/config.json");
                return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
            }();
            QVERIFY(demoConfig.trimmed().endsWith('}'));
            // An otherwise valid config.json with one field 100,000 arrays deep.
            const QString deepConfig = makeModel(m_dir, "deep-config", QByteArray());
            QFile::copy(m_demo + "/model.safetensors", deepConfig + "/model.safetensors");
            QString config = demoConfig.trimmed();
            config.chop(1);
            config += ", \"x\": " + QString(100000, '[') + QString(100000, ']') + "}";
            writeFile(deepConfig + "/config.json", config.toUtf8());
            QTest::newRow("config.json nested 100,000 deep")
                << QStringList{"info", deepConfig} << "config.json: nested deeper than 256 levels" << "";
            // 257 levels is one too many; brackets inside strings do not count.
            const QString justTooDeep = makeModel(m_dir, "config-257", QByteArray());
            QFile::copy(m_demo + "/model.safetensors", justTooDeep + "/model.safetensors");
            config = demoConfig.trimmed();
            config.chop(1);
            config += ", \"x\": " + QString(256, '[') + "\"]]]]\"" + QString(256, ']') + "}";
            writeFile(justTooDeep + "/config.json", config.toUtf8());
            QTest::newRow("config.json nested 257 deep")
                << QStringList{"info", justTooDeep} << "config.json: nested deeper than 256 levels" << "";

            // A tokenizer.json whose normalizer is a Sequence nested 200,000 deep.
            const QString deepTok = makeModel(m_dir, "deep-tokenizer", QByteArray());
            QFile::copy(m_demo + "/model.safetensors", deepTok + "/model.safetensors");
            QFile::remove(deepTok + "/tokenizer.model");
            QByteArray tok = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": )";
            const int levels = 200000;
            for (int i = 0; i < levels; ++i)
                tok += R"({"type": "Sequence", "normalizers": [)";
            tok += R"({"type": "Lowercase"})";
            for (int i = 0; i < levels; ++i)
                tok += "]}";
            tok += "}";
            writeFile(deepTok + "/tokenizer.json", tok);
            QTest::newRow("tokenizer.json normalizer nested 200,000 deep")
                << QStringList{"eval", deepTok, "--text", m_eval, "--seqlen", "64"}
                << "tokenizer.json: nested deeper than 256 levels" << "";

            const QString deepRecipe = d + "/deep-recipe.json";
            writeFile(deepRecipe, "{\"layers\": " + QByteArray(100000, '[') + QByteArray(100000, ']') + "}");
            QTest::newRow("prune: recipe nested 100,000 deep")
                << (prune + QStringList{"--recipe", deepRecipe, "--out", out})
                << "deep-recipe.json: nested deeper than 256 levels" << out;

            // report reads the compressed folder's sparselab.json, whose recipe is nested deep.
            const QString deepProv = d + "/deep-provenance";
            QDir().mkpath(deepProv);
            writeFile(deepProv + "/sparselab.json", "{\"layers\": [], \"recipe\": {\"layers\": "
                                                        + QByteArray(100000, '[') + QByteArray(100000, ']') + "}}");
            const QString html = d + "/never.html";
            QTest::newRow("report: sparselab.json with a recipe nested 100,000 deep")
                << QStringList{"report", "--dense", m_demo, "--compressed", deepProv, "--html", html}
                << "sparselab.json: nested deeper than 256 levels" << html;

            const QString deepIndex = makeModel(m_dir, "deep-index", QByteArray());
            writeFile(deepIndex + "/model.safetensors.index.json",
                      "{\"weight_map\": {}, \"metadata\": " + QByteArray(100000, '[') + QByteArray(100000, ']') + "}");
            QTest::newRow("shard index nested 100,000 deep")
                << QStringList{"info", deepIndex} << "model.safetensors.index.json: nested deeper than 256 levels" << "";

            const std::string header = "{\"__metadata__\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
            const QString deepHeader = makeModel(m_dir, "deep-header", safetensorsBytes(header, QByteArray()));
            QTest::newRow("safetensors header nested 100,000 deep")
                << QStringList{"info", deepHeader} << "model.safetensors: header is nested deeper than 256 levels" << "";

            // Over the size limit: a sparse file, so the test costs no disk.
            const QString hugeConfig = makeModel(m_dir, "huge-config", QByteArray());
            QFile::copy(m_demo + "/model.safetensors", hugeConfig + "/model.safetensors");
            {
                QFile f(hugeConfig + "/config.json");
                QVERIFY(f.open(QIODevice::ReadWrite));
                QVERIFY(f.resize((qint64(256) << 20) + 1));
            }
            QTest::newRow("config.json larger than 256 MiB")
                << QStringList{"info", hugeConfig} << "config.json: larger than 256 MiB" << "";
        }

        // --- special files: inputs must be regular files, read with a size cap ----------------
        {
            const auto fifo = [&](const QString& path) {
                QFile::remove(path);
                const bool made = ::mkfifo(QFile::encodeName(path).constData(), 0600) == 0;
                if (!made)
                    qWarning("mkfifo %s: %s", qPrintable(path), std::strerror(errno));
                return path;
            };
            const QString fifoText = fifo(d + "/fifo.txt");
            QTest::newRow("prune: FIFO as --calib")
                << (QStringList{"prune", m_demo, "--calib", fifoText, "--nsamples", "4", "--seqlen", "64", "--out", out})
                << "fifo.txt: not a regular file" << out;
            QTest::newRow("eval: FIFO as --text")
                << QStringList{"eval", m_demo, "--text", fifoText, "--seqlen", "64"} << "fifo.txt: not a regular file" << "";
            QTest::newRow("prune: /dev/zero as --calib")
                << (QStringList{"prune", m_demo, "--calib", "/dev/zero", "--nsamples", "4", "--seqlen", "64", "--out", out})
                << "/dev/zero: not a regular file" << out;
            QTest::newRow("eval: /dev/zero as --text")
                << QStringList{"eval", m_demo, "--text", "/dev/zero", "--seqlen", "64"} << "/dev/zero: not a regular file" << "";
            QTest::newRow("report: FIFO as --prompts")
                << QStringList{"report", "--dense", m_demo, "--compressed", m_demo, "--html", d + "/never.html",
                               "--prompts", fifoText}
                << "fifo.txt: not a regular file" << d + "/never.html";

            const QString fifoConfig = makeModel(m_dir, "fifo-config", QByteArray());
            QFile::copy(m_demo + "/model.safetensors", fifoConfig + "/model.safetensors");
            QFile::remove(fifoConfig + "/config.json");
            fifo(fifoConfig + "/config.json");
            QTest::newRow("FIFO as config.json") << QStringList{"info", fifoConfig} << "config.json: not a regular file" << "";
            QTest::newRow("FIFO given as the config.json itself")
                << QStringList{"info", fifoConfig + "/config.json"} << "config.json: not a regular file" << "";

            const QString fifoRecipe = fifo(d + "/fifo-recipe.json");
            QTest::newRow("prune: FIFO as --recipe")
                << (prune + QStringList{"--recipe", fifoRecipe, "--out", out}) << "fifo-recipe.json: not a regular file" << out;

            const QString fifoWeights = makeModel(m_dir, "fifo-weights", QByteArray());
            fifo(fifoWeights + "/model.safetensors");
            QTest::newRow("FIFO as model.safetensors")
                << QStringList{"info", fifoWeights} << "model.safetensors: not a regular file" << "";

            // The demo model whose only tokenizer file is a FIFO named `tokenizerFile`.
            const auto fifoTokenizerModel = [&](const QString& folder, const QString& tokenizerFile) {
                const QString m = makeModel(m_dir, folder, QByteArray());
                QFile::copy(m_demo + "/model.safetensors", m + "/model.safetensors");
                QFile::remove(m + "/tokenizer.model");
                fifo(m + "/" + tokenizerFile);
                return m;
            };
            QTest::newRow("FIFO as tokenizer.model")
                << QStringList{"eval", fifoTokenizerModel("fifo-tokenizer", "tokenizer.model"), "--text", m_eval,
                               "--seqlen", "64"}
                << "tokenizer.model: not a regular file" << "";
            QTest::newRow("FIFO as tokenizer.json")
                << QStringList{"eval", fifoTokenizerModel("fifo-tokenizer-json", "tokenizer.json"), "--text", m_eval,
                               "--seqlen", "64"}
                << "tokenizer.json: not a regular file" << "";

            // A regular text over the 1 GiB cap (sparse: no disk used) is refused before reading.
            const QString hugeText = d + "/huge.txt";
            {
                QFile f(hugeText);
                QVERIFY(f.open(QIODevice::WriteOnly));
                QVERIFY(f.resize((qint64(1) << 30) + 1));
            }
            QTest::newRow("eval: text larger than 1 GiB")
                << QStringList{"eval", m_demo, "--text", hugeText, "--seqlen", "64"} << "huge.txt: larger than 1024 MiB" << "";
        }

        // --- outputs never replace inputs --------------------------------------------------------
        QTest::newRow("--text is a folder") << QStringList{"eval", m_demo, "--text", d} << d << "";
        QTest::newRow("export: --gguf inside the input model")
            << QStringList{"export", m_demo, "--gguf", m_demo + "/config.json"} << "config.json" << "";
        QTest::newRow("export: --gguf is a folder") << QStringList{"export", m_demo, "--gguf", d} << d << "";
        QTest::newRow("unknown command") << QStringList{"compress"} << "compress" << "";
    }

    // No output may be an input of the same command: --html naming the --prompts file is
    // refused and the prompts are left as they were.
    // "newdir/" names the folder newdir.
    void pruneOutputWithTrailingSlash()
    {
        const QString out = m_dir.filePath("slash-out");
        const auto run = runCli({"prune", m_demo, "--calib", m_calib, "--nsamples", "4", "--seqlen", "64", "--sparsity",
                                 "0.5", "--out", out + "/", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QVERIFY(QFileInfo::exists(out + "/model.safetensors"));
        QVERIFY(QDir(m_dir.path()).entryList({".*.tmp-*"}, QDir::AllEntries | QDir::Hidden).isEmpty());
    }

    // Names that are not UTF-8 are refused when the command starts (a JSON writer threw
    // type_error 316 after the whole prune, exit 1, and left a resume folder behind). QProcess
    // arguments are QStrings, which cannot hold such bytes: the shell makes them with printf.
    void namesNotUtf8()
    {
        const QString d = m_dir.path();
        QProcess shell;
        const QString setup = QStringLiteral(
            "bad=\"$(printf 'bad\\377\\376name')\"; mkdir -p \"$D/$bad\" && cp \"$DEMO\"/* \"$D/$bad/\"");
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("D", d);
        env.insert("DEMO", m_demo);
        env.insert("CALIB", m_calib);
        env.insert("CLI", QStringLiteral(SPARSELAB_CLI_PATH));
        shell.setProcessEnvironment(env);
        shell.start("/bin/sh", {"-c", setup});
        QVERIFY(shell.waitForFinished(60000) && shell.exitCode() == 0);
        const struct {
            const char* script;
            const char* mustName;
        } cases[] = {
            {"\"$CLI\" info \"$D/$bad\" --json", "is not valid UTF-8"},
            {"\"$CLI\" prune \"$DEMO\" --calib \"$CALIB\" --nsamples 4 --seqlen 64 --out \"$D/out-$bad\"",
             "--out: is not valid UTF-8"},
            {"\"$CLI\" prune \"$DEMO\" --calib \"$CALIB\" --nsamples 4 --seqlen 64 --out \"$D/ws-out\" "
             "--workspace \"$D/$bad.h5\"",
             "--workspace: is not valid UTF-8"},
            {"\"$CLI\" export \"$DEMO\" --gguf \"$D/never-name.gguf\" --name \"$bad\"", "--name: is not valid UTF-8"},
        };
        for (const auto& c : cases) {
            shell.start("/bin/sh", {"-c", QStringLiteral("bad=\"$(printf 'bad\\377\\376name')\"; ") + c.script});
            QVERIFY(shell.waitForFinished(120000));
            const QString err = QString::fromUtf8(shell.readAllStandardError());
            QVERIFY2(shell.exitStatus() == QProcess::NormalExit && shell.exitCode() == 2, qPrintable(c.script + (" → " + err)));
            QVERIFY2(errorLine(err).startsWith("error:") && errorLine(err).contains(c.mustName), qPrintable(err));
        }
        // Nothing was created under a name with those bytes but the model folder itself.
        int withThoseBytes = 0;
        for (const auto& entry : std::filesystem::directory_iterator(QFile::encodeName(d).toStdString()))
            withThoseBytes += entry.path().filename().string().find("\xff\xfe") != std::string::npos ? 1 : 0;
        QCOMPARE(withThoseBytes, 1);
        // QTemporaryDir cannot remove a name QString cannot hold: remove it by its bytes.
        for (const auto& entry : std::filesystem::directory_iterator(QFile::encodeName(d).toStdString()))
            if (entry.path().filename().string().find("\xff\xfe") != std::string::npos)
                std::filesystem::remove_all(entry.path());
        QVERIFY(!QFileInfo::exists(d + "/never-name.gguf") && !QFileInfo::exists(d + "/ws-out"));
    }

    // Every model size at its limit with the largest --nsamples and --seqlen: the plan's byte
    // counts pass 2^63 and once wrapped to a negative total that "fits" (exit 0); now they
    // saturate: the plan is printed with "more than 9.2 EB" and the command refuses (exit 2).
    void planSaturates()
    {
        const QString huge = makeModelWithConfig(m_dir, "all-limits", [](nlohmann::json& config) {
            config["hidden_size"] = 1048576;
            config["intermediate_size"] = 4194304;
            config["num_hidden_layers"] = 10000;
            config["num_attention_heads"] = 65536;
            config["num_key_value_heads"] = 65536;
            config["vocab_size"] = 16777216;
            config["max_position_embeddings"] = 1048576;
        });
        QVERIFY(!huge.isEmpty());
        // The activations and the block loss's dense outputs are 2^62 bytes each: their sum passes 2^63.
        const auto run = runCli({"plan", huge, "--nsamples", "1048576", "--seqlen", "1048576", "--recover", "1",
                                 "--recover-loss", "block"});
        QVERIFY2(run.exitCode == 2, qPrintable(run.stderrText));
        QVERIFY2(errorLine(run.stderrText).contains("needs more than 9.2 EB of host memory"), qPrintable(run.stderrText));
        QVERIFY2(run.stdoutText.contains("more than 9.2 EB"), qPrintable(run.stdoutText));
        QVERIFY(!run.stdoutText.contains(QRegularExpression(" -[0-9]"))); // no wrapped, negative byte count
    }

    void reportNeverOverwritesItsPrompts()
    {
        const QString prompts = m_dir.filePath("prompts.html");
        writeFile(prompts, "Once upon a time\n");
        const auto run = runCli({"report", "--dense", m_demo, "--compressed", m_demo, "--prompts", prompts, "--html",
                                 prompts, "--quiet"});
        QVERIFY2(run.exitCode == 2, qPrintable(run.stderrText));
        QVERIFY2(errorLine(run.stderrText).contains("is one of the inputs"), qPrintable(run.stderrText));
        QFile file(prompts);
        QVERIFY(file.open(QIODevice::ReadOnly));
        QCOMPARE(file.readAll(), QByteArray("Once upon a time\n"));
    }

    void catalogue()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, mustName);
        QFETCH(QString, mustNotExist);
        // Leading "env:NAME=VALUE" arguments set the command's environment.
        QStringList environment;
        while (!args.isEmpty() && args.first().startsWith(QStringLiteral("env:")))
            environment << args.takeFirst().mid(4);
        const auto run = runCli(args, environment);
        const QString line = errorLine(run.stderrText);
        QVERIFY2(run.exitCode == 2, qPrintable(QString("exit %1, stderr: %2").arg(run.exitCode).arg(run.stderrText)));
        QVERIFY2(line.contains(mustName), qPrintable("error line does not name '" + mustName + "': " + line));
        QVERIFY2(!run.stderrText.contains("internal error"), qPrintable(run.stderrText));
        // One clear line: exactly one "error:" line, and it is the last thing printed.
        int errorLines = 0;
        for (const QString& l : run.stderrText.split('\n', Qt::SkipEmptyParts))
            errorLines += l.startsWith(QStringLiteral("error:")) ? 1 : 0;
        QVERIFY2(errorLines == 1, qPrintable(run.stderrText));
        QVERIFY2(line.startsWith(QStringLiteral("error:")), qPrintable(line));
        QVERIFY(run.stdoutText.isEmpty());
        if (!mustNotExist.isEmpty())
            QVERIFY2(!QFileInfo::exists(mustNotExist), qPrintable(mustNotExist));
        // No temporary leftovers next to the would-be output.
        const QDir dir(m_dir.path());
        QVERIFY(dir.entryList({".*.tmp-*"}, QDir::AllEntries | QDir::Hidden).isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestCliBadInput)
#include "test_cli_bad_input.moc"
