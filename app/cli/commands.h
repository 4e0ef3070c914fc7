#pragma once
// sparselab-cli subcommands. Each takes the arguments after the subcommand name and returns
// the process exit code: 0 success, 2 bad input or usage (one line on stderr naming the file
// or option and the problem), 1 internal failure. main() catches InputError → 2 and any
// other exception → 1, so commands may simply throw.

#include "cli_support.h"

namespace sparselab::cli {

int cmdInfo(const Args& args);
int cmdEval(const Args& args);
int cmdSolveLayer(const Args& args);
int cmdPrune(const Args& args);
int cmdPlan(const Args& args);

} // namespace sparselab::cli
