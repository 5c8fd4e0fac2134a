#pragma once
// Shared by the widget tests: the shared data paths, isolated settings, and screenshots into the build tree.
#include <QCoreApplication>
#include <QDialog>
#include <QDir>
#include <QStandardPaths>
#include <QString>
#include <QWidget>

namespace quench::gui::test {

inline QString sharedData(const char* rel) { return QStringLiteral(QUENCH_SHARED_DATA "/") + QString::fromLatin1(rel); }
inline QString modelDir() { return sharedData("tinystories-656k"); }
inline QString calibText() { return sharedData("tinystories-valid/tinystories_val.train.txt"); }
inline QString evalText() { return sharedData("tinystories-valid/tinystories_val.eval.txt"); }

// QSettings go to a test location, never the user's.
inline void isolateSettings() {
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("QuenchTest"));
    QCoreApplication::setApplicationName(QStringLiteral("QuenchTest"));
}

// Saves w as build-tree/screenshots/<name>.png; returns the path or an empty string on failure.
inline QString screenshot(QWidget& w, const QString& name) {
    const QString dir = QCoreApplication::applicationDirPath() + QStringLiteral("/screenshots");
    QDir().mkpath(dir);
    const QString path = dir + QLatin1Char('/') + name + QStringLiteral(".png");
    QCoreApplication::processEvents();
    if (w.isWindow() && w.size() != QSize(1280, 800) && !qobject_cast<QDialog*>(&w)) return QString();  // views at 1280 x 800
    return w.grab().save(path) ? path : QString();
}

}  // namespace quench::gui::test
