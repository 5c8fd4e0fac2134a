#include "error_reporter.h"

#include <QMessageBox>
#include <QWidget>

namespace quench::gui {

ErrorReporter::ErrorReporter(QWidget* dialogParent) : QObject(dialogParent), dialogParent_(dialogParent) {}

void ErrorReporter::report(const QString& title, const QString& message) {
    history_ << title + QStringLiteral(": ") + message;
    emit reported(title, message);
    if (handler_) {
        handler_(title, message);
        return;
    }
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, dialogParent_);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setTextInteractionFlags(Qt::TextSelectableByMouse);
    box->open();
}

}  // namespace quench::gui
