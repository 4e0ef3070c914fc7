#pragma once
// Runs the sparselab-cli binary under test (SPARSELAB_CLI_PATH) and captures what it printed.

#include <QProcess>
#include <QString>
#include <QStringList>

namespace sparselab::testing {

struct CliRun {
    int exitCode = -1; // -1 when the process crashed or did not finish
    QString stderrText;
    QString stdoutText;
};

inline CliRun runCli(const QStringList& args)
{
    QProcess process;
    process.start(QStringLiteral(SPARSELAB_CLI_PATH), args);
    process.waitForFinished(300000);
    CliRun run;
    run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
    run.stderrText = QString::fromUtf8(process.readAllStandardError());
    run.stdoutText = QString::fromUtf8(process.readAllStandardOutput());
    return run;
}

} // namespace sparselab::testing
