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
// recover PRUNED_DIR --dense MODEL --calib FILE --out OUT_DIR --recover STEPS …
int cmdRecover(const Args& args);
int cmdPlan(const Args& args);

// The value options of recovery (prune --recover …, recover); the flag --recover-norms is separate.
[[nodiscard]] std::vector<std::string> recoveryOptionNames();

} // namespace sparselab::cli
