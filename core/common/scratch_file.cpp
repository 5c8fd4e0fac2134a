#include "common/scratch_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace quench {
ScratchFile::ScratchFile(const std::string& prefix, const std::string& dir) {
    std::string d = dir;
    if (d.empty()) {
        const char* env = std::getenv("TMPDIR");
        d = env && *env ? env : "/tmp";
    }
    std::string templ = d + "/" + prefix + "-XXXXXX";
    fd_ = ::mkstemp(templ.data());
    if (fd_ < 0) throw Error(sys_error(templ, "cannot create a temporary file", errno));
    path_ = templ;
    ::unlink(templ.c_str());  // nameless from now on
}

ScratchFile::~ScratchFile() {
    if (fd_ >= 0) ::close(fd_);  // mappings of the file keep its data while they live
}

void ScratchFile::write_at(std::size_t offset, const void* data, std::size_t n, const std::string& what) const {
    const auto* src = static_cast<const uint8_t*>(data);
    for (std::size_t done = 0; done < n;) {
        const ssize_t w = ::pwrite(fd_, src + done, n - done, static_cast<off_t>(offset + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw Error(sys_error(path_, "cannot write " + what, w < 0 ? errno : ENOSPC));
        done += static_cast<std::size_t>(w);
    }
}

void ScratchFile::read_at(std::size_t offset, void* data, std::size_t n, const std::string& what) const {
    auto* dst = static_cast<uint8_t*>(data);
    for (std::size_t done = 0; done < n;) {
        const ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw Error(sys_error(path_, "cannot read " + what, errno));
        if (r == 0) throw Error(path_ + ": cannot read " + what + ": the file ends early");
        done += static_cast<std::size_t>(r);
    }
}

}  // namespace quench
