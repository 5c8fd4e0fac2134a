#include "app_settings.h"

#include <QSettings>

namespace quench::gui {

namespace {

QStringList recent(const QString& key) { return QSettings().value(key).toStringList(); }

void addRecent(const QString& key, const QString& item) {
    QStringList list = recent(key);
    list.removeAll(item);
    list.prepend(item);
    while (list.size() > AppSettings::kMaxRecent) list.removeLast();
    QSettings().setValue(key, list);
}

}  // namespace

QStringList AppSettings::recentModels() { return recent(QStringLiteral("recent/models")); }
void AppSettings::addRecentModel(const QString& dir) { addRecent(QStringLiteral("recent/models"), dir); }
QStringList AppSettings::recentProjects() { return recent(QStringLiteral("recent/projects")); }
void AppSettings::addRecentProject(const QString& path) { addRecent(QStringLiteral("recent/projects"), path); }

QString AppSettings::value(const QString& key, const QString& fallback) {
    return QSettings().value(key, fallback).toString();
}
void AppSettings::setValue(const QString& key, const QString& value) { QSettings().setValue(key, value); }

}  // namespace quench::gui
