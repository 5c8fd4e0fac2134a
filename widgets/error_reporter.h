#pragma once
// Where the workbench shows errors: a window-modal QMessageBox (opened with open(), so no nested event
// loop) carrying core's quench::Error text. Tests install a handler instead, so no dialog ever waits for a
// click and every message can be asserted.
#include <QObject>
#include <QString>
#include <QStringList>

#include <functional>

class QWidget;

namespace quench::gui {

class ErrorReporter : public QObject {
    Q_OBJECT

public:
    using Handler = std::function<void(const QString& title, const QString& message)>;
    explicit ErrorReporter(QWidget* dialogParent);

    void setHandler(Handler handler) { handler_ = std::move(handler); }
    void report(const QString& title, const QString& message);
    const QStringList& history() const { return history_; }  // every message shown, "title: message"

signals:
    void reported(const QString& title, const QString& message);

private:
    QWidget* dialogParent_;
    Handler handler_;
    QStringList history_;
};

}  // namespace quench::gui
