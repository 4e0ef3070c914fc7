#include "action_button.h"

#include <QAction>
#include <QPushButton>

namespace sparselab::widgets {

void bindButtonToAction(QPushButton* button, QAction* action, bool followIcon)
{
    auto sync = [button, action, followIcon] {
        button->setEnabled(action->isEnabled());
        button->setToolTip(action->toolTip());
        if (followIcon)
            button->setIcon(action->icon());
    };
    QObject::connect(action, &QAction::changed, button, sync);
    QObject::connect(button, &QPushButton::clicked, action, &QAction::trigger);
    sync();
}

} // namespace sparselab::widgets
