#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace quench {

namespace {

std::filesystem::path parent_dir(const std::string& path) {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    return dir.empty() ? std::filesystem::path(".") : dir;
}

}  // namespace

AtomicFile::AtomicFile(const std::string& final_path) : final_path_(final_path) {
    const std::filesystem::path name = std::filesystem::path(final_path).filename();
    if (name.empty() || name == "." || name == "..") throw Error(final_path + ": not a file path");
    const std::filesystem::path dir = parent_dir(final_path);
    // Same directory as the target, so the final rename() stays on one filesystem and is atomic.
    std::string tmpl = (dir / ("." + name.string() + ".tmp-XXXXXX")).string();
    fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd_ < 0) throw Error(sys_error(final_path, "cannot create a temporary file in " + dir.string(), errno));
    tmp_path_ = tmpl;
    // mkstemp creates 0600; replacing a file keeps its mode, a new file gets the usual 0644.
    struct stat st {};
    const mode_t mode = ::stat(final_path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
    ::fchmod(fd_, mode);  // best effort: a mode we cannot set is no reason to lose the data
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, std::size_t n) {
    if (fd_ < 0) throw Error(final_path_ + ": write after commit or after an earlier failure");
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            const int err = errno;
            // Close now so a caller that swallows the error cannot commit a truncated file.
            ::close(fd_);
            fd_ = -1;
            throw Error(sys_error(final_path_, "write failed", err));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void AtomicFile::commit() {
    if (fd_ < 0) throw Error(final_path_ + ": commit after commit or after an earlier failure");
    const int fd = fd_;
    fd_ = -1;
    // Data must be on disk before the rename publishes it, or a crash could leave an empty final file.
    if (::fsync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        throw Error(sys_error(final_path_, "fsync failed", err));
    }
    // close() can report deferred write errors (NFS), so it is checked too.
    if (::close(fd) != 0) throw Error(sys_error(final_path_, "close failed", errno));
    if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0)
        throw Error(sys_error(final_path_, "cannot rename " + tmp_path_ + " into place", errno));
    committed_ = true;
    // Persist the directory entry itself; some filesystems refuse fsync on directories, which is harmless.
    const int dfd = ::open(parent_dir(final_path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    AtomicFile f(path);
    f.write(bytes.data(), bytes.size());
    f.commit();
}

}  // namespace quench
