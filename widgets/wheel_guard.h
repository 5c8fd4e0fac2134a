#pragma once
// Spin boxes, combo boxes and sliders take the mouse wheel only when they have the keyboard focus: a wheel
// turned to scroll a dock past them must not change a setting on the way (a learning rate changed by a
// scroll is a silent, wrong experiment). Unfocused, the wheel scrolls whatever holds them.
#include <QObject>

class WheelGuard : public QObject {
    Q_OBJECT
public:
    explicit WheelGuard(QObject* parent = nullptr) : QObject(parent) {}

    // Watches every widget of the application, present and future.
    static void install(QObject* owner);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;
};
