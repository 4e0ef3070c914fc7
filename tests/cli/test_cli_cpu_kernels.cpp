// OpenBLAS's and ATen's kernels matched to the CPU (util/cpu_kernels.h): which core type
// replaces which choice, derived by hand from OpenBLAS's list of pre-AVX2 fallbacks; and the
// CLI, started without SPARSELAB_KEEP_CPU_KERNELS (which the test suite sets), running the
// kernels those rules pick for this machine and saying so in `version`.
#include "util/cpu_kernels.h"

#include "cli/cli_runner.h"

#include <QProcessEnvironment>
#include <QTest>

#include <string>

using namespace sparselab;

class TestCliCpuKernels : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void fallbacksAreReplacedByWhatTheCpuRuns()
    {
        const util::CpuVectorFeatures avx512{true, true}, avx2{true, false}, sse{false, false};
        // Debian 12's OpenBLAS on an Emerald Rapids Xeon (family 6, model 207) picks Prescott.
        QCOMPARE(util::betterOpenBlasCore("Prescott", avx512), std::string("SkylakeX"));
        QCOMPARE(util::betterOpenBlasCore("Prescott", avx2), std::string("Haswell"));
        QCOMPARE(util::betterOpenBlasCore("Sandybridge", avx2), std::string("Haswell")); // AVX only: older than the CPU
        QCOMPARE(util::betterOpenBlasCore("Nehalem", avx512), std::string("SkylakeX"));
        // Nothing better to run, or not a fallback: OpenBLAS's choice stays.
        QCOMPARE(util::betterOpenBlasCore("Prescott", sse), std::string());
        QCOMPARE(util::betterOpenBlasCore("Haswell", avx512), std::string());
        QCOMPARE(util::betterOpenBlasCore("SkylakeX", avx512), std::string());
        QCOMPARE(util::betterOpenBlasCore("Zen", avx2), std::string());
        QCOMPARE(util::betterOpenBlasCore("", avx512), std::string()); // not OpenBLAS
    }

    void cliRunsTheKernelsThisCpuRuns()
    {
        // This process keeps OpenBLAS's choice (SPARSELAB_KEEP_CPU_KERNELS=1 from CTest, or a
        // user's OPENBLAS_CORETYPE): that choice and the rule give what the CLI must report.
        const std::string chosen = util::openBlasCoreName();
        if (chosen.empty())
            QSKIP("the BLAS in this process is not OpenBLAS");
        const bool userChoice = !qEnvironmentVariableIsEmpty("OPENBLAS_CORETYPE");
        const std::string better = userChoice ? std::string() : util::betterOpenBlasCore(chosen, util::cpuVectorFeatures());
        const std::string expected = better.empty() ? chosen : better;

        const auto run = testing::runCli({"version"}, {"SPARSELAB_KEEP_CPU_KERNELS="});
        QCOMPARE(run.exitCode, 0);
        const QString line = run.stdoutText.section('\n', 1, 1);
        QVERIFY2(line.startsWith(QStringLiteral("BLAS: OpenBLAS %1 kernels").arg(QString::fromStdString(expected))),
                 qPrintable(run.stdoutText));
        QCOMPARE(line.contains(QStringLiteral("had picked %1").arg(QString::fromStdString(chosen))), !better.empty());
        // ATen's kernels: AVX-512 where the CPU has it, unless the user chose.
        const QString userAten = qEnvironmentVariable("ATEN_CPU_CAPABILITY");
        const QString aten = !userAten.isEmpty() ? userAten
                             : util::cpuVectorFeatures().avx512 ? QStringLiteral("avx512")
                                                                : QStringLiteral("default");
        QCOMPARE(run.stdoutText.section('\n', 2, 2),
                 QStringLiteral("CPU kernels: OpenBLAS %1, ATen %2").arg(QString::fromStdString(expected), aten));

        // Kept: the CLI runs OpenBLAS's own choice and says nothing more.
        const auto kept = testing::runCli({"version"}, {"SPARSELAB_KEEP_CPU_KERNELS=1"});
        QCOMPARE(kept.exitCode, 0);
        if (!userChoice)
            QCOMPARE(kept.stdoutText.section('\n', 1, 1), QStringLiteral("BLAS: OpenBLAS %1 kernels").arg(QString::fromStdString(chosen)));
        if (userAten.isEmpty())
            QVERIFY2(kept.stdoutText.section('\n', 2, 2).endsWith(QStringLiteral("ATen default")), qPrintable(kept.stdoutText));
    }
};

QTEST_GUILESS_MAIN(TestCliCpuKernels)
#include "test_cli_cpu_kernels.moc"
