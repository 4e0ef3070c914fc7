#pragma once
// sparselab-cli export: MODEL (a Hugging Face folder or a .gguf file) → one GGUF file for
// llama.cpp. Kept apart from commands.h so it can be registered with one line in main.cpp:
//   {"export", [](const auto& a) { return cmdExport(Args("export", a, {"gguf", "type", "name", "threads"},
//                                                         {"json", "quiet"})); }},

#include "cli_support.h"

namespace sparselab::cli {

// sparselab-cli export MODEL --gguf OUT.gguf [--type f32|f16|q8_0|q4_0] [--name NAME]
//                            [--threads T] [--json] [--quiet]
// Exit codes as for every subcommand (0 / 2 bad input / 1 internal).
int cmdExport(const Args& args);

} // namespace sparselab::cli
