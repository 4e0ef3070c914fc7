#pragma once
// A "recent files" list kept in QSettings and shown as a menu, the one implementation behind
// File → Open Recent Model, Open Recent Recipe and Open Recent Workspace: newest first, at most
// `limit` entries, "&1 name" for the first nine with the full path as tooltip and status tip,
// then Clear Menu. Choosing an entry emits chosen(path); what opening means is the owner's.

#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>

#include <QMenu>

namespace sparselab::gui {

class RecentFiles : public QObject {
    Q_OBJECT

public:
    RecentFiles(QString settingsKey, int limit, QObject* parent = nullptr);

    // The menu this list fills (rebuilt on every change); may be set after load().
    void setMenu(QMenu* menu);
    [[nodiscard]] QMenu* menu() const { return m_menu; }
    // Reads the list from QSettings (empty entries dropped, cut to the limit).
    void load();
    // Puts `path` first (moving it if listed) and saves.
    void add(const QString& path);
    // Drops `path` (e.g. a folder that has gone) and saves.
    void remove(const QString& path);
    void clear();
    [[nodiscard]] const QStringList& files() const { return m_files; }
    // The menu is enabled when the owner allows it (not busy, ...) and the list is not empty.
    void setAvailable(bool available);

Q_SIGNALS:
    void chosen(const QString& path);

private:
    void saveAndRebuild();
    void rebuild();

    QString m_key;
    int m_limit = 10;
    QStringList m_files;
    QPointer<QMenu> m_menu;
    bool m_available = true;
};

} // namespace sparselab::gui
