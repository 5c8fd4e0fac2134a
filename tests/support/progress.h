#pragma once
// A progress sink that cancels the job it watches, for the tests of cancellation.
#include <string>

#include "common/progress.h"

namespace quench::test {

// Cancels once n progress reports have come in.
class CancelAfter : public ProgressSink {
public:
    explicit CancelAfter(int n) : n_(n) {}
    void report(double, const std::string&) override { ++seen_; }
    bool cancelled() const override { return seen_ >= n_; }

private:
    int n_, seen_ = 0;
};

}  // namespace quench::test
