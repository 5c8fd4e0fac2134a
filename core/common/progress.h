#pragma once
// Progress and cancellation for long jobs: one sink that carries both (like OBS's remux callback),
// with nested sub-ranges (like Krita's KoProgressUpdater). Jobs call check() between units of work.
#include <atomic>
#include <string>

namespace quench {

class ProgressSink {
public:
    virtual ~ProgressSink() = default;
    // fraction in [0, 1] of the whole job; stage is a short human-readable label.
    virtual void report(double fraction, const std::string& stage) { (void)fraction; (void)stage; }
    virtual bool cancelled() const { return false; }
    // Throws quench::Cancelled when the job should stop.
    void check() const;
};

// A sink that does nothing and never cancels: the default for callers that don't care.
ProgressSink& null_progress();

// Maps [0, 1] of a sub-task onto [begin, end] of a parent sink; cancellation passes through.
class SubProgress : public ProgressSink {
public:
    SubProgress(ProgressSink& parent, double begin, double end) : parent_(parent), begin_(begin), end_(end) {}
    void report(double fraction, const std::string& stage) override {
        parent_.report(begin_ + (end_ - begin_) * fraction, stage);
    }
    bool cancelled() const override { return parent_.cancelled(); }

private:
    ProgressSink& parent_;
    double begin_, end_;
};

// A sink whose cancel flag can be set from another thread (the GUI's Cancel button, a test).
class CancelFlagProgress : public ProgressSink {
public:
    void cancel() { cancelled_.store(true); }
    bool cancelled() const override { return cancelled_.load(); }

private:
    std::atomic<bool> cancelled_{false};
};

}  // namespace quench
