#pragma once
// Advisory locks of the run store: Linux open-file-description (OFD) locks on single bytes of the run and
// project lock files in "study.h5.d/" (protocol: run_store.cpp and docs/hdf5-schema.md, "Runs in progress").
// Kept apart from run_store.cpp so the commit protocol reads on its own. Internal to core/io.
#include <sys/types.h>

#include <chrono>
#include <string>

namespace quench::detail {

using Clock = std::chrono::steady_clock;
inline constexpr auto kRetryEvery = std::chrono::milliseconds(5);  // poll interval while waiting out a lock

// Advisory locks on single bytes of a lock file. Linux open-file-description locks: the kernel drops them
// when the holder dies (so a killed writer reads as gone), and two opens in one process conflict like two
// processes do (so a GUI sees its own job's run as running); classic fcntl locks do neither, flock has no
// byte ranges. Closing the file releases everything it holds.
class LockFile {
public:
    // Byte layout. Run lock: kAlive is held exclusively by the writer for the run's lifetime; kStep is the
    // data lock (exclusive for a write step, shared for a read) with its turnstile at kStep + 1.
    // Project lock: kProject (exclusive to add a run, shared to read) with its turnstile at kProject + 1.
    static constexpr off_t kAlive = 0;
    static constexpr off_t kStep = 1;
    static constexpr off_t kProject = 0;

    LockFile() = default;
    LockFile(LockFile&& o) noexcept;
    LockFile& operator=(LockFile&& o) noexcept;
    ~LockFile();

    // Readers pass O_RDONLY and get a closed LockFile when it does not exist; writers add O_CREAT.
    static LockFile open(const std::string& path, int flags);
    bool is_open() const { return fd_ >= 0; }
    bool try_lock(off_t byte, bool exclusive);
    void lock(off_t byte, bool exclusive);
    bool lock_within(off_t byte, bool exclusive, Clock::time_point deadline);
    void unlock(off_t byte) noexcept;
    // True when another open of the file holds byte exclusively (probes with a shared lock, then drops it).
    bool held_elsewhere(off_t byte);

    // Reader-writer locking of data through a turnstile byte: a waiting reader holds the turnstile, so a
    // writer that writes step after step (and would win every race for the data byte) waits for it once.
    void lock_write(off_t data);
    bool lock_read_within(off_t data, Clock::duration limit);

private:
    bool set(off_t byte, short type, bool wait);
    int fd_ = -1;
    std::string path_;
};

// A write step's exclusive lock, released at scope exit (the LockFile outlives it).
class StepLock {
public:
    explicit StepLock(LockFile& f) : f_(f) { f_.lock_write(LockFile::kStep); }
    ~StepLock() { f_.unlock(LockFile::kStep); }
    StepLock(const StepLock&) = delete;
    StepLock& operator=(const StepLock&) = delete;

private:
    LockFile& f_;
};

}  // namespace quench::detail
