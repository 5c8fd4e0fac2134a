#include "wheel_guard.h"

#include <QAbstractSlider>
#include <QAbstractSpinBox>
#include <QApplication>
#include <QComboBox>
#include <QEvent>

namespace {

bool guarded(QObject* o) {
    return qobject_cast<QAbstractSpinBox*>(o) || qobject_cast<QComboBox*>(o) || qobject_cast<QAbstractSlider*>(o);
}

}  // namespace

void WheelGuard::install(QObject* owner) { qApp->installEventFilter(new WheelGuard(owner)); }

bool WheelGuard::eventFilter(QObject* watched, QEvent* event) {
    if (event->type() == QEvent::Polish && guarded(watched)) {
        // Qt gives these the focus on a wheel turn (Qt::WheelFocus) before they see the event.
        auto* w = static_cast<QWidget*>(watched);
        if (w->focusPolicy() == Qt::WheelFocus) w->setFocusPolicy(Qt::StrongFocus);
    } else if (event->type() == QEvent::Wheel && guarded(watched) && !static_cast<QWidget*>(watched)->hasFocus()) {
        event->ignore();  // not accepted: QApplication passes it on to the parent, which scrolls
        return true;
    }
    return QObject::eventFilter(watched, event);
}
