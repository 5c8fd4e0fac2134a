#pragma once
// What the workbench remembers between sessions, in one place over QSettings: recent model directories
// and project files, the last data files, the default codec spec and the sensitivity candidates typed. Window geometry and dock layout are
// saved by MainWindow itself (saveGeometry/saveState) under the keys named here.
#include <QString>
#include <QStringList>

namespace quench::gui {

class AppSettings {
public:
    static constexpr int kMaxRecent = 8;

    static QStringList recentModels();
    static void addRecentModel(const QString& dir);
    static QStringList recentProjects();
    static void addRecentProject(const QString& path);

    static QString value(const QString& key, const QString& fallback = {});
    static void setValue(const QString& key, const QString& value);

    // Keys.
    static QString geometryKey() { return QStringLiteral("window/geometry"); }
    static QString stateKey() { return QStringLiteral("window/state"); }
    static QString codecKey() { return QStringLiteral("defaults/codec"); }
    static QString calibKey() { return QStringLiteral("defaults/calib"); }
    static QString evalKey() { return QStringLiteral("defaults/eval"); }
    static QString candidatesKey() { return QStringLiteral("defaults/candidates"); }
};

}  // namespace quench::gui
