#pragma once
// The one clock text every file SparseLab writes uses (workspaces, sparselab.json, reports).

#include <string>

namespace sparselab {

// UTC now as "YYYY-MM-DDTHH:MM:SSZ" (ISO 8601, seconds).
[[nodiscard]] std::string utcNow();

} // namespace sparselab
