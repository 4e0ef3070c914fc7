#pragma once
// Runs the sparselab-cli binary under test (SPARSELAB_CLI_PATH) — or its engine
// (SPARSELAB_CLI_ENGINE_PATH, which the front end hands most commands to) — and captures what
// it printed.

#include <QProcess>
#include <QString>
#include <QStringList>

namespace sparselab::testing {

struct CliRun {
    int exitCode = -1; // -1 when the process crashed or did not finish
    QString stderrText;
    QString stdoutText;
};

// `environment`: "NAME=VALUE" entries set (VALUE may be empty) on top of this process's.
inline CliRun runProgram(const QString& program, const QStringList& args, const QStringList& environment = {})
{
    QProcess process;
    if (!environment.isEmpty()) {
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        for (const QString& entry : environment)
            env.insert(entry.section('=', 0, 0), entry.section('=', 1));
        process.setProcessEnvironment(env);
    }
    process.start(program, args);
    // No deadline of its own: a slow or loaded machine must not turn a correct run into a
    // failure (a 300 s cap aborted cli_test_cli_recovery beside a full build). CTest's TIMEOUT
    // (1500 s, tests/CMakeLists.txt) bounds a run that hangs.
    process.waitForFinished(-1);
    CliRun run;
    run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
    run.stderrText = QString::fromUtf8(process.readAllStandardError());
    run.stdoutText = QString::fromUtf8(process.readAllStandardOutput());
    return run;
}

inline CliRun runCli(const QStringList& args, const QStringList& environment = {})
{
    return runProgram(QStringLiteral(SPARSELAB_CLI_PATH), args, environment);
}

// The engine alone (the same program as sparselab-cli where the build has no separate front end).
inline CliRun runCliEngine(const QStringList& args, const QStringList& environment = {})
{
    return runProgram(QStringLiteral(SPARSELAB_CLI_ENGINE_PATH), args, environment);
}

} // namespace sparselab::testing
