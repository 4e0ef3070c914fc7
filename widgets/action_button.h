#pragma once
// Makes a push button a second face of a QAction: clicking triggers the action, and the
// button follows the action's enabled state and tooltip (and icon, when asked). The action
// stays the single place where availability is decided.

class QAction;
class QPushButton;

namespace sparselab::widgets {

void bindButtonToAction(QPushButton* button, QAction* action, bool followIcon = false);

} // namespace sparselab::widgets
