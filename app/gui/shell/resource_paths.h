#pragma once
// Where the bundled demo model and texts live, for the GUI's defaults.
//
// Looked up in order (the first that holds the demo model wins):
//   1. $SPARSELAB_RESOURCES (an override for packagers and tests);
//   2. <executable>/../share/sparselab (a relocated install);
//   3. SPARSELAB_INSTALLED_RESOURCES (the configured install prefix);
//   4. SPARSELAB_SOURCE_RESOURCES (running from the build tree).

#include <QString>

namespace sparselab::gui {

// The resources folder, or an empty string when none of the candidates exists.
[[nodiscard]] QString resourcesDir();
// resources/models/stories260K-hf, or empty when not found.
[[nodiscard]] QString demoModelDir();
// resources/text/tinystories_eval.txt, or empty when not found.
[[nodiscard]] QString demoEvalText();
// resources/text/tinystories_calib.txt, or empty when not found.
[[nodiscard]] QString demoCalibText();

} // namespace sparselab::gui
