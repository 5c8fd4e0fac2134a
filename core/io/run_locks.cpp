#include "io/run_locks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "common/error.h"

namespace quench::detail {

LockFile::LockFile(LockFile&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}

LockFile& LockFile::operator=(LockFile&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(path_, o.path_);
    return *this;
}

LockFile::~LockFile() {
    if (fd_ >= 0) ::close(fd_);
}

LockFile LockFile::open(const std::string& path, int flags) {
    LockFile l;
    l.path_ = path;
    l.fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (l.fd_ < 0 && !(errno == ENOENT && !(flags & O_CREAT)))
        throw Error(sys_error(path, "cannot open the lock file", errno));
    return l;
}

bool LockFile::try_lock(off_t byte, bool exclusive) { return set(byte, exclusive ? F_WRLCK : F_RDLCK, false); }

void LockFile::lock(off_t byte, bool exclusive) { set(byte, exclusive ? F_WRLCK : F_RDLCK, true); }

bool LockFile::lock_within(off_t byte, bool exclusive, Clock::time_point deadline) {
    while (!try_lock(byte, exclusive)) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(kRetryEvery);
    }
    return true;
}

void LockFile::unlock(off_t byte) noexcept {
    struct flock fl {};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    ::fcntl(fd_, F_OFD_SETLK, &fl);
}

bool LockFile::held_elsewhere(off_t byte) {
    if (!try_lock(byte, false)) return true;
    unlock(byte);
    return false;
}

void LockFile::lock_write(off_t data) {
    lock(data + 1, true);
    lock(data, true);
    unlock(data + 1);
}

bool LockFile::lock_read_within(off_t data, Clock::duration limit) {
    const auto deadline = Clock::now() + limit;
    if (!lock_within(data + 1, false, deadline)) return false;
    const bool got = lock_within(data, false, deadline);
    unlock(data + 1);
    return got;
}

bool LockFile::set(off_t byte, short type, bool wait) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    for (;;) {
        if (::fcntl(fd_, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) return true;
        if (errno == EINTR) continue;
        if (!wait && (errno == EAGAIN || errno == EACCES)) return false;
        throw Error(sys_error(path_, "cannot lock", errno));
    }
}

}  // namespace quench::detail
