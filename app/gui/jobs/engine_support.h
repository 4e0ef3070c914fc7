#pragma once
// Helpers shared by the GUI's engine translation units (engine_jobs.cpp, analysis_jobs.cpp):
// paths and texts as the engine takes them, the calibration windows a run draws, and the
// provenance record a run's export carries. Worker-thread safe. No LibTorch here.

#include "session_types.h"

#include <nlohmann/json_fwd.hpp>

#include <QString>

#include <filesystem>
#include <string>

namespace sparselab::data { struct CalibrationWindows; }
namespace sparselab::tokenize { class Tokenizer; }
namespace sparselab { class CancelToken; }

namespace sparselab::gui {

[[nodiscard]] std::filesystem::path toEnginePath(const QString& path);
// Reads a whole UTF-8 text file; InputError naming it when unreadable or empty ("No <what>
// text was chosen." when `path` is empty).
[[nodiscard]] std::string readEngineText(const QString& path, const char* what);
// Tokenizes the calibration text and draws the windows exactly as a run does (and as the CLI
// does with the same settings); the tokenization stops (CancelledError) when `cancel` is set.
[[nodiscard]] data::CalibrationWindows drawCalibrationWindows(const tokenize::Tokenizer& tokenizer,
                                                              const CalibrationSettings& calibration,
                                                              const CancelToken* cancel = nullptr);
// The sparselab.json provenance of a run's export: the record the run made when it ran
// (workflow/compression_run.h; texts hashed as read), with the run's current name.
// InputError when the run carries none (read back from a workspace).
[[nodiscard]] nlohmann::json runProvenance(const RunRecord& run);

} // namespace sparselab::gui
