#pragma once
// QCustomPlot for a project built with QT_NO_KEYWORDS (LibTorch uses the names signals, slots,
// emit and foreach): its header uses Qt's keyword macros, so they are mapped to the Q_ forms
// for this include only. Include this instead of <qcustomplot.h>.

#define signals Q_SIGNALS
#define slots Q_SLOTS
#define emit Q_EMIT
#define foreach Q_FOREACH
#include <qcustomplot.h>
#undef signals
#undef slots
#undef emit
#undef foreach
