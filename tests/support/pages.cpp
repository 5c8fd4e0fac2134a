#include "support/pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

namespace quench::test {

std::size_t page_size() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

int64_t present_pages(const void* p, std::size_t n) {
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const uintptr_t page = page_size(), first = reinterpret_cast<uintptr_t>(p) / page,
                    last = (reinterpret_cast<uintptr_t>(p) + n - 1) / page;
    int64_t present = 0;
    for (uintptr_t i = first; i <= last; ++i) {
        uint64_t entry = 0;
        if (::pread(fd, &entry, sizeof entry, static_cast<off_t>(i * sizeof entry)) != sizeof entry) {
            ::close(fd);
            return -1;
        }
        present += static_cast<int64_t>((entry >> 63) & 1u);
    }
    ::close(fd);
    return present;
}

bool can_release_pages() {
#ifdef MADV_PAGEOUT
    void* p = std::aligned_alloc(page_size(), page_size());
    const bool ok = p && ::madvise(p, page_size(), MADV_PAGEOUT) == 0;
    std::free(p);
    return ok;
#else
    return false;
#endif
}

void sync_to_disk(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot fsync " + path);
    }
    ::close(fd);
}

}  // namespace quench::test
