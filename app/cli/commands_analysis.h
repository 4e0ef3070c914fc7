#pragma once
// sparselab-cli subcommands that explore trade-offs: sensitivity scan, allocator, sweeps
// (with shards and merge) and the report. Registered in main.cpp; exit codes as for every
// subcommand (0 / 2 bad input / 1 internal / 130 cancelled).

#include "cli_support.h"

namespace sparselab::cli {

// sensitivity MODEL --calib FILE --out S.json [--sparsities L] [--bits L] [--method M] …
int cmdSensitivity(const Args& args);
// allocate S.json (--budget-sparsity S | --budget-bytes B) --out RECIPE.json
//          [--compare MODEL --calib FILE --eval FILE …]
int cmdAllocate(const Args& args);
// sweep MODEL --calib FILE --eval FILE --out R.json [--sparsities L] [--bits L] [--methods L]
//       [--groups L] [--shard i/N] …
int cmdSweep(const Args& args);
// merge A.json B.json … --out M.json
int cmdMerge(const Args& args);
// report --dense MODEL --compressed DIR (--html OUT.html | --pdf OUT.pdf) …
int cmdReport(const Args& args);

} // namespace sparselab::cli
