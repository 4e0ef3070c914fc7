// Model files are data, never code:
//   - PyTorch pickle weights are refused with a message that says why (never opened);
//   - no source file of the engine or the front ends calls a pickle/TorchScript loader;
//   - names written in a shard index cannot reach outside the model folder (relative "..",
//     absolute paths, symlinks planted in the folder), while names inside it still work;
//   - names in tokenizer files are never used as paths (a tokenizer_config.json that points
//     elsewhere does not change which tokenizer is loaded).

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "testsupport.h"
#include "tokenize/tokenizer.h"
#include "util/errors.h"

#include <QTemporaryDir>
#include <QTest>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using namespace sparselab;

namespace {

void writeText(const fs::path& file, const std::string& text)
{
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
}

// A one-tensor safetensors file holding model.norm.weight = [1, 2, 3, 4].
void writeShard(const fs::path& file)
{
    fs::create_directories(file.parent_path());
    const float values[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    io::writeSafetensors(file, {{"model.norm.weight", io::DType::F32, {4}, values, sizeof(values)}});
}

std::string indexNaming(const std::string& shard)
{
    return R"({"weight_map": {"model.norm.weight": ")" + shard + R"("}})";
}

// The message of the InputError `body` throws, or "" when it throws none.
template <typename Body>
std::string inputErrorOf(Body&& body)
{
    try {
        body();
    } catch (const InputError& e) {
        return e.what();
    }
    return {};
}

} // namespace

class TestModelFilesAreData : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    fs::path dir(const std::string& name) const { return fs::path(m_dir.path().toStdString()) / name; }

private Q_SLOTS:
    void pickleWeightsAreRefused()
    {
        const fs::path folder = dir("pickle-only");
        writeText(folder / "pytorch_model.bin", "PK\x03\x04 a pickle archive would be here");
        const std::string message = inputErrorOf([&] { (void)io::Checkpoint::open(folder); });
        QVERIFY2(message.find("pytorch_model.bin") != std::string::npos, message.c_str());
        QVERIFY2(message.find("pickle") != std::string::npos, message.c_str());
        QVERIFY2(message.find('\n') == std::string::npos, message.c_str());

        for (const char* name : {"model.pt", "weights.PTH", "x.ckpt", "y.bin"}) {
            const std::string m = inputErrorOf([&] { (void)model::ModelConfig::load(folder / name); });
            QVERIFY2(m.find(name) != std::string::npos && m.find("pickle") != std::string::npos, m.c_str());
        }
        QVERIFY(io::isPickleWeightsName("pytorch_model-00001-of-00002.bin"));
        QVERIFY(!io::isPickleWeightsName("model.safetensors"));
        QVERIFY(!io::isPickleWeightsName("config.json"));

        const fs::path binShard = dir("bin-shard");
        writeText(binShard / "model.safetensors.index.json", indexNaming("pytorch_model-00001-of-00001.bin"));
        const std::string shardMessage = inputErrorOf([&] { (void)io::Checkpoint::open(binShard); });
        QVERIFY2(shardMessage.find("model.safetensors.index.json") != std::string::npos
                     && shardMessage.find("pickle") != std::string::npos,
                 shardMessage.c_str());
    }

    // A source scan: the project's own code never calls a loader that unpickles or runs
    // TorchScript. (Tests and this file are not scanned; they name the calls.)
    void noPickleLoaderInTheSources()
    {
        const fs::path source = SPARSELAB_SOURCE_DIR;
        const char* const forbidden[] = {"torch::load(", "torch::jit::load", "jit::load(", "pickle_load",
                                         "_load_for_mobile", "serialize::InputArchive", "Unpickler", "readArchiveAndTensors"};
        int scanned = 0;
        for (const char* top : {"core", "app", "widgets", "bench"}) {
            if (!fs::exists(source / top))
                continue;
            for (const auto& entry : fs::recursive_directory_iterator(source / top)) {
                const auto ext = entry.path().extension();
                if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".h" && ext != ".cu" && ext != ".inc"))
                    continue;
                std::ifstream in(entry.path());
                std::stringstream ss;
                ss << in.rdbuf();
                const std::string text = ss.str();
                ++scanned;
                for (const char* call : forbidden)
                    QVERIFY2(text.find(call) == std::string::npos,
                             qPrintable(QString::fromStdString(entry.path().string()) + " calls " + call));
            }
        }
        QVERIFY(scanned > 50);
    }

    void shardNamesCannotEscapeTheFolder()
    {
        const fs::path outside = dir("outside");
        writeShard(outside / "stolen.safetensors");
        const fs::path folder = dir("escape");
        fs::create_directories(folder);
        fs::create_symlink(outside / "stolen.safetensors", folder / "link.safetensors");
        fs::create_directory_symlink(outside, folder / "linkdir");
        const std::string absolute = (outside / "stolen.safetensors").string();
        for (const std::string& shard : {std::string("../outside/stolen.safetensors"), absolute,
                                         std::string("sub/../../outside/stolen.safetensors"),
                                         std::string("link.safetensors"), std::string("linkdir/stolen.safetensors"),
                                         std::string("")}) {
            writeText(folder / "model.safetensors.index.json", indexNaming(shard));
            const std::string message = inputErrorOf([&] { (void)io::Checkpoint::open(folder); });
            QVERIFY2(message.find("model.safetensors.index.json") != std::string::npos
                         && message.find("outside the model folder") != std::string::npos,
                     qPrintable(QString::fromStdString("shard '" + shard + "': " + message)));
        }

        // Inside the folder, in a subfolder or written with "./": accepted, and the data read.
        const fs::path good = dir("inside");
        writeShard(good / "sub" / "model-00001-of-00001.safetensors");
        for (const std::string& shard : {std::string("sub/model-00001-of-00001.safetensors"),
                                         std::string("./sub/model-00001-of-00001.safetensors")}) {
            writeText(good / "model.safetensors.index.json", indexNaming(shard));
            const auto ckpt = io::Checkpoint::open(good);
            const io::TensorView v = ckpt.view("model.norm.weight");
            QCOMPARE(v.numel(), int64_t(4));
            QCOMPARE(reinterpret_cast<const float*>(v.data)[3], 4.0f);
        }
    }

    // Only the folder's own tokenizer files are read, by fixed names: a tokenizer_config.json
    // naming another tokenizer file (HF's "tokenizer_file", a vocab path) is not followed.
    void tokenizerFileNamesAreNotFollowed()
    {
        const fs::path folder = dir("tok-escape");
        fs::create_directories(folder);
        const fs::path demo = testing::demoModelDir();
        for (const char* name : {"tokenizer.model", "special_tokens_map.json"})
            fs::copy_file(demo / name, folder / name);
        // A different, valid tokenizer.json outside the folder: loading it would change the ids.
        writeText(dir("elsewhere") / "tokenizer.json",
                  R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})");
        writeText(folder / "tokenizer_config.json",
                  R"({"add_bos_token": true, "bos_token": "<s>", "tokenizer_file": "../elsewhere/tokenizer.json",
                      "vocab_file": ")" + (dir("elsewhere") / "tokenizer.json").string() + R"("})");
        const auto tok = tokenize::loadTokenizer(folder);
        // The demo's ids (tokenizer.h's documented example, checked against libsentencepiece).
        QCOMPARE(tok->encodeForModel("Once upon a time"), (std::vector<int32_t>{1, 403, 407, 261, 378}));
        QCOMPARE(tok->vocabSize(), 512);
    }
};

QTEST_GUILESS_MAIN(TestModelFilesAreData)
#include "test_model_files_are_data.moc"
