#pragma once
// `--workspace W.h5` support shared by the CLI subcommands, and the `workspace` listing.

#include "cli_support.h"

#include "store/workspace.h"

#include <filesystem>

namespace sparselab::cli {

// `sparselab-cli workspace W.h5 [--json]`: the model, settings and runs in a workspace.
int cmdWorkspace(const Args& args);

} // namespace sparselab::cli
