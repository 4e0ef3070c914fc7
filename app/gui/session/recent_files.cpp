#include "recent_files.h"

#include <QAction>
#include <QFileInfo>
#include <QMenu>
#include <QSettings>

namespace sparselab::gui {

RecentFiles::RecentFiles(QString settingsKey, int limit, QObject* parent)
    : QObject(parent), m_key(std::move(settingsKey)), m_limit(std::max(1, limit))
{
}

void RecentFiles::setMenu(QMenu* menu)
{
    m_menu = menu;
    if (m_menu)
        m_menu->setToolTipsVisible(true);
    rebuild();
}

void RecentFiles::load()
{
    m_files = QSettings().value(m_key).toStringList();
    m_files.removeAll(QString());
    while (m_files.size() > m_limit)
        m_files.removeLast();
    rebuild();
}

void RecentFiles::add(const QString& path)
{
    m_files.removeAll(path);
    m_files.prepend(path);
    while (m_files.size() > m_limit)
        m_files.removeLast();
    saveAndRebuild();
}

void RecentFiles::remove(const QString& path)
{
    if (m_files.removeAll(path) > 0)
        saveAndRebuild();
}

void RecentFiles::clear()
{
    m_files.clear();
    saveAndRebuild();
}

void RecentFiles::setAvailable(bool available)
{
    m_available = available;
    if (m_menu)
        m_menu->setEnabled(m_available && !m_files.isEmpty());
}

void RecentFiles::saveAndRebuild()
{
    QSettings().setValue(m_key, m_files);
    rebuild();
}

void RecentFiles::rebuild()
{
    if (!m_menu)
        return;
    // Actions are parented to the menu: clearing it disconnects them.
    m_menu->clear();
    for (int i = 0; i < m_files.size(); ++i) {
        const QString path = m_files.at(i);
        const QString name = QFileInfo(path).fileName();
        QAction* action = m_menu->addAction(i < 9 ? QStringLiteral("&%1  %2").arg(i + 1).arg(name) : name);
        action->setToolTip(path);
        action->setStatusTip(path);
        connect(action, &QAction::triggered, this, [this, path] { Q_EMIT chosen(path); });
    }
    if (!m_files.isEmpty())
        m_menu->addSeparator();
    QAction* clearAction = m_menu->addAction(tr("&Clear Menu"));
    clearAction->setEnabled(!m_files.isEmpty());
    connect(clearAction, &QAction::triggered, this, &RecentFiles::clear);
    m_menu->setEnabled(m_available && !m_files.isEmpty());
}

} // namespace sparselab::gui
