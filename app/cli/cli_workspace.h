#pragma once
// `--workspace W.h5` support shared by the CLI subcommands, and the `workspace` listing.

#include "cli_support.h"

#include "store/workspace.h"

#include <filesystem>

namespace sparselab::pipeline { struct Recipe; }

namespace sparselab::cli {

// Fails early (InputError naming the file) unless `file` is absent or a readable workspace;
// when it records a model whose files differ from `model`, says so (one workspace per model).
void checkWorkspaceFor(const std::filesystem::path& file, const store::ModelIdentity& model);

// A short label for lists: "sparsegpt 50%", "sparsegpt 2:4 4-bit", "recipe R.json".
[[nodiscard]] std::string recipeLabel(const pipeline::Recipe& recipe, const std::string& source);

// `sparselab-cli workspace W.h5 [--json]`: the model, settings and runs in a workspace.
int cmdWorkspace(const Args& args);

} // namespace sparselab::cli
