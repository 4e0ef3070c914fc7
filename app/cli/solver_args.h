#pragma once
// The solver options on the command line, parsed the same way by every subcommand and by the
// CPU-only `solve-layer` front end (no LibTorch here): --method --sparsity --nm --bits --group
// --sym --act-order --static-groups --fp16-scale --signed-scale --blocksize --damp; --method rtn
// without --sparsity sets sparsity 0. InputError names the option on bad values.

#include "cli_support.h"
#include "solve/solver_options.h"

namespace sparselab::cli {

// The solver options given on the command line, on top of `base`, validated.
// With `dense` non-null, --method dense is accepted and sets *dense (the plan leaves layers
// untouched); otherwise it is an unknown method.
[[nodiscard]] solve::SolverOptions solverOptionsFromArgs(const Args& args, solve::SolverOptions base,
                                                         bool* dense = nullptr);

} // namespace sparselab::cli
