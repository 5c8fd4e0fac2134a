#include "common/progress.h"

#include "common/error.h"

namespace quench {

void ProgressSink::check() const {
    if (cancelled()) throw Cancelled();
}

ProgressSink& null_progress() {
    static ProgressSink sink;
    return sink;
}

}  // namespace quench
