// Hardening of the CLI's outputs, end to end on the bundled demo model:
//   - a full disk mid-export (a small tmpfs) fails with exit 2 and one line, removes its
//     temporaries, gives the space back and leaves the previous file / folder as it was;
//   - an input is never overwritten (byte-identical after a refused command);
//   - determinism: the same inputs and seed give byte-identical exports (prune's weights and
//     copied files; its sparselab.json up to the documented run-specific fields; GGUF fully),
//     and the thread count (1 vs 2) does not change the masks.
// The tmpfs cases need root (CAP_SYS_ADMIN for mount(2)) and skip with a message otherwise.

#include "io/safetensors.h"
#include "testsupport.h"

#include "cli/cli_runner.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include <sys/mount.h>
#include <sys/statvfs.h>

namespace fs = std::filesystem;
using namespace sparselab;
using sparselab::testing::runCli;

namespace {

QByteArray sha256Of(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    QCryptographicHash h(QCryptographicHash::Sha256);
    h.addData(&f);
    return h.result().toHex();
}

// File name → sha256 of every file in a folder.
std::map<QString, QByteArray> folderHashes(const QString& folder)
{
    std::map<QString, QByteArray> out;
    for (const QString& name : QDir(folder).entryList(QDir::Files | QDir::Hidden))
        out[name] = sha256Of(folder + "/" + name);
    return out;
}

int errorLineCount(const QString& stderrText)
{
    int n = 0;
    for (const QString& l : stderrText.split('\n', Qt::SkipEmptyParts))
        n += l.startsWith(QStringLiteral("error:")) ? 1 : 0;
    return n;
}

QString lastLine(const QString& text)
{
    const auto lines = text.split('\n', Qt::SkipEmptyParts);
    return lines.isEmpty() ? QString() : lines.last().trimmed();
}

QStringList hiddenTemporaries(const QString& folder)
{
    return QDir(folder).entryList({".*.tmp-*"}, QDir::AllEntries | QDir::Hidden);
}

uint64_t usedBytes(const QString& mountPoint)
{
    struct statvfs s {};
    if (::statvfs(mountPoint.toLocal8Bit().constData(), &s) != 0)
        return 0;
    return uint64_t(s.f_blocks - s.f_bfree) * s.f_frsize;
}

// A tmpfs of `bytes` mounted on a fresh folder; unmounted on destruction.
class SmallDisk {
public:
    SmallDisk(const QString& where, uint64_t bytes) : m_path(where)
    {
        QDir().mkpath(m_path);
        const std::string options = "size=" + std::to_string((bytes + 4095) / 4096 * 4096);
        if (::mount("tmpfs", m_path.toLocal8Bit().constData(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0)
            m_mounted = true;
        else
            m_error = std::strerror(errno);
    }
    ~SmallDisk()
    {
        if (m_mounted)
            ::umount2(m_path.toLocal8Bit().constData(), MNT_DETACH);
    }
    SmallDisk(const SmallDisk&) = delete;
    SmallDisk& operator=(const SmallDisk&) = delete;
    [[nodiscard]] bool mounted() const { return m_mounted; }
    [[nodiscard]] QString skipReason() const
    {
        return "cannot mount a small tmpfs for the disk-full case (needs root / CAP_SYS_ADMIN): "
               + QString::fromStdString(m_error);
    }
    [[nodiscard]] const QString& path() const { return m_path; }

private:
    QString m_path;
    bool m_mounted = false;
    std::string m_error;
};

// The per-layer zero pattern of every tensor in a safetensors file.
std::map<std::string, std::vector<bool>> zeroMasks(const QString& file)
{
    const auto f = io::SafetensorsFile::open(file.toStdString());
    std::map<std::string, std::vector<bool>> masks;
    for (const auto& info : f.tensors()) {
        const io::TensorView v = f.view(info);
        const size_t element = io::dtypeSize(v.dtype);
        std::vector<bool> zero(size_t(v.numel()));
        for (size_t i = 0; i < zero.size(); ++i) {
            bool allZero = true;
            for (size_t b = 0; b < element; ++b) // +0 and -0 both count as pruned
                allZero = allZero && (b == element - 1 ? (uint8_t(v.data[i * element + b]) & 0x7f) == 0
                                                       : uint8_t(v.data[i * element + b]) == 0);
            zero[i] = allZero;
        }
        masks[info.name] = std::move(zero);
    }
    return masks;
}

// sparselab.json without the fields that describe the run rather than the result.
nlohmann::json provenanceWithoutRunFields(const QString& file)
{
    QFile f(file);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    auto j = nlohmann::json::parse(f.readAll().toStdString());
    for (const char* key : {"created_utc", "prune_seconds", "torch_threads", "kernel_threads"})
        j.erase(key);
    for (auto& layer : j["layers"])
        layer.erase("seconds");
    return j;
}

} // namespace

class TestCliHardening : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString m_demo, m_calib;
    QStringList pruneArgs(const QString& out) const
    {
        return {"prune", m_demo, "--calib", m_calib, "--nsamples", "8", "--seqlen", "64", "--sparsity", "0.5",
                "--seed", "7", "--quiet", "--out", out};
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        m_demo = QString::fromStdString(testing::demoModelDir().string());
        m_calib = QString::fromStdString(testing::demoCalibText().string());
    }

    // A GGUF re-export onto an existing file on a disk with room for one copy only: the
    // write of the temporary fails (ENOSPC); the old file must be byte-identical afterwards,
    // no temporary may remain and the space must come back.
    void fullDiskKeepsThePreviousGguf()
    {
        const QString probe = m_dir.filePath("probe.gguf");
        auto run = runCli({"export", m_demo, "--gguf", probe, "--type", "f32", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const uint64_t size = uint64_t(QFileInfo(probe).size());
        QVERIFY(size > 1000000); // ~260K f32 parameters

        // Room for the first copy and half of a second one.
        SmallDisk disk(m_dir.filePath("small-gguf"), size + size / 2);
        if (!disk.mounted())
            QSKIP(qPrintable(disk.skipReason()));
        const QString out = disk.path() + "/demo.gguf";
        run = runCli({"export", m_demo, "--gguf", out, "--type", "f32", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const QByteArray before = sha256Of(out);
        QCOMPARE(before, sha256Of(probe)); // same bytes as on the big disk (determinism too)
        const uint64_t usedBefore = usedBytes(disk.path());

        run = runCli({"export", m_demo, "--gguf", out, "--type", "f32", "--quiet"});
        QVERIFY2(run.exitCode == 2, qPrintable(QString("exit %1: %2").arg(run.exitCode).arg(run.stderrText)));
        QCOMPARE(errorLineCount(run.stderrText), 1);
        QVERIFY2(lastLine(run.stderrText).contains("demo.gguf"), qPrintable(run.stderrText));
        QVERIFY2(!run.stderrText.contains("internal error"), qPrintable(run.stderrText));
        QCOMPARE(sha256Of(out), before);
        qInfo("disk full during a GGUF re-export: %s", qPrintable(lastLine(run.stderrText)));
        QVERIFY2(hiddenTemporaries(disk.path()).isEmpty(), qPrintable(hiddenTemporaries(disk.path()).join(' ')));
        QCOMPARE(usedBytes(disk.path()), usedBefore);
    }

    // A prune whose folder export does not fit: no output folder, no temporary folder, the
    // files already on the disk untouched.
    void fullDiskLeavesNoPartialFolder()
    {
        SmallDisk disk(m_dir.filePath("small-prune"), 512 * 1024);
        if (!disk.mounted())
            QSKIP(qPrintable(disk.skipReason()));
        const QString keep = disk.path() + "/previous.txt";
        {
            QFile f(keep);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("an earlier result\n");
        }
        const uint64_t usedBefore = usedBytes(disk.path());
        const QString out = disk.path() + "/pruned";
        const auto run = runCli(pruneArgs(out));
        QVERIFY2(run.exitCode == 2, qPrintable(QString("exit %1: %2").arg(run.exitCode).arg(run.stderrText)));
        QCOMPARE(errorLineCount(run.stderrText), 1);
        QVERIFY2(lastLine(run.stderrText).contains("pruned"), qPrintable(run.stderrText));
        QVERIFY2(lastLine(run.stderrText).contains("No space left on device")
                     || lastLine(run.stderrText).contains("write failed"),
                 qPrintable(run.stderrText));
        QVERIFY(!QFileInfo::exists(out));
        qInfo("disk full during a prune export: %s", qPrintable(lastLine(run.stderrText)));
        QVERIFY2(hiddenTemporaries(disk.path()).isEmpty(), qPrintable(hiddenTemporaries(disk.path()).join(' ')));
        QCOMPARE(QDir(disk.path()).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden),
                 QStringList{"previous.txt"});
        QCOMPARE(sha256Of(keep), QCryptographicHash::hash("an earlier result\n", QCryptographicHash::Sha256).toHex());
        QCOMPARE(usedBytes(disk.path()), usedBefore);
    }

    // Commands refuse outputs that would replace an input; the input stays byte-identical.
    void inputsAreNeverOverwritten()
    {
        // solve-layer --out the problem file itself.
        const QString problem = m_dir.filePath("problem.safetensors");
        QVERIFY(QFile::copy(QString::fromStdString((testing::testDataDir() / "solver" / "problem_a.safetensors").string()),
                            problem));
        const QByteArray problemHash = sha256Of(problem);
        auto run = runCli({"solve-layer", "--problem", problem, "--out", problem, "--sparsity", "0.5"});
        QCOMPARE(run.exitCode, 2);
        QCOMPARE(errorLineCount(run.stderrText), 1);
        QCOMPARE(sha256Of(problem), problemHash);

        // export of a GGUF model onto itself.
        const QString gguf = m_dir.filePath("self.gguf");
        run = runCli({"export", m_demo, "--gguf", gguf, "--type", "q8_0", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const QByteArray ggufHash = sha256Of(gguf);
        run = runCli({"export", gguf, "--gguf", gguf, "--type", "q8_0", "--quiet"});
        QCOMPARE(run.exitCode, 2);
        QCOMPARE(errorLineCount(run.stderrText), 1);
        QCOMPARE(sha256Of(gguf), ggufHash);

        // prune into the model folder, or onto an existing folder: the folder is unchanged.
        const auto demoBefore = folderHashes(m_demo);
        run = runCli(pruneArgs(m_demo + "/pruned"));
        QCOMPARE(run.exitCode, 2);
        const QString existing = m_dir.filePath("existing");
        QDir().mkpath(existing);
        run = runCli(pruneArgs(existing));
        QCOMPARE(run.exitCode, 2);
        QVERIFY(QDir(existing).isEmpty());
        QVERIFY(folderHashes(m_demo) == demoBefore);
    }

    // Same inputs, same seed → the same bytes, run after run.
    void exportsAreDeterministic()
    {
        const QString a = m_dir.filePath("det-a"), b = m_dir.filePath("det-b");
        for (const QString& out : {a, b}) {
            const auto run = runCli(pruneArgs(out) + QStringList{"--threads", "1"});
            QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        }
        const auto ha = folderHashes(a), hb = folderHashes(b);
        QCOMPARE(ha.size(), hb.size());
        QVERIFY(ha.count("model.safetensors") == 1);
        for (const auto& [name, hash] : ha) {
            if (name == "sparselab.json")
                continue;
            QVERIFY2(hb.count(name) && hb.at(name) == hash, qPrintable(name + " differs between two runs"));
        }
        QCOMPARE(provenanceWithoutRunFields(a + "/sparselab.json").dump(),
                 provenanceWithoutRunFields(b + "/sparselab.json").dump());

        // GGUF export (quantizing): byte-identical files.
        const QString g1 = m_dir.filePath("det-1.gguf"), g2 = m_dir.filePath("det-2.gguf");
        for (const QString& out : {g1, g2}) {
            const auto run = runCli({"export", a, "--gguf", out, "--type", "q4_0", "--quiet"});
            QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        }
        QCOMPARE(sha256Of(g1), sha256Of(g2));
    }

    // One thread or two: the same pruning masks (the solver's choices do not depend on how
    // LibTorch splits its reductions).
    void threadCountDoesNotChangeMasks()
    {
        const QString one = m_dir.filePath("threads-1"), two = m_dir.filePath("threads-2");
        auto run = runCli(pruneArgs(one) + QStringList{"--threads", "1"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        run = runCli(pruneArgs(two) + QStringList{"--threads", "2"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto m1 = zeroMasks(one + "/model.safetensors"), m2 = zeroMasks(two + "/model.safetensors");
        QCOMPARE(m1.size(), m2.size());
        int64_t pruned = 0;
        for (const auto& [name, mask] : m1) {
            QVERIFY2(m2.count(name) && m2.at(name) == mask, name.c_str());
            for (bool z : mask)
                pruned += z ? 1 : 0;
        }
        QVERIFY(pruned > 50000); // half of the ~200K linear weights are pruned
        const bool sameBytes = sha256Of(one + "/model.safetensors") == sha256Of(two + "/model.safetensors");
        qInfo("1 vs 2 threads: masks identical; weight bytes %s", sameBytes ? "identical too" : "differ in rounding");
    }
};

QTEST_GUILESS_MAIN(TestCliHardening)
#include "test_cli_hardening.moc"
