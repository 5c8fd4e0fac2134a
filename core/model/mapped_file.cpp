#include "model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "common/error.h"

namespace quench {

MappedFile::MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(sys_error(path, "cannot open", errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw Error(sys_error(path, "cannot stat", err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) {
        // mmap rejects a zero length; an empty view lets the format readers report the real problem.
        ::close(fd);
        return;
    }
    // PROT_WRITE with MAP_PRIVATE: tensors wrapped around this memory are mutable torch tensors, and any
    // write to them lands in a private copy-on-write page, never in the file.
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps its own reference to the file
    if (p == MAP_FAILED) throw Error(sys_error(path, "cannot mmap", err));
    data_ = static_cast<uint8_t*>(p);
    register_mapping(data_, size_);
    // Checkpoints are read front to back almost entirely; ask for read-ahead of files that fit comfortably in
    // memory. A 7B shard and beyond is read block by block as passes reach it: read-ahead of all of it would
    // push the user's other work out of the page cache. Only a hint, so errors are ignored.
    constexpr std::size_t kReadAheadLimit = std::size_t(1) << 30;
    if (size_ <= kReadAheadLimit) ::madvise(p, size_, MADV_WILLNEED);
}

MappedFile::~MappedFile() {
    if (data_) {
        unregister_mapping(data_);
        ::munmap(data_, size_);
    }
}

void release_pages(const void* p, std::size_t n) {
#ifdef MADV_PAGEOUT
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_PAGEOUT);
#else
    (void)p, (void)n;
#endif
}

namespace {
std::mutex g_mappings_mutex;
std::map<uintptr_t, uintptr_t> g_mappings;  // begin -> end of every registered mapping
}  // namespace

void register_mapping(const void* p, std::size_t n) {
    std::lock_guard<std::mutex> lock(g_mappings_mutex);
    g_mappings[reinterpret_cast<uintptr_t>(p)] = reinterpret_cast<uintptr_t>(p) + n;
}

void unregister_mapping(const void* p) {
    std::lock_guard<std::mutex> lock(g_mappings_mutex);
    g_mappings.erase(reinterpret_cast<uintptr_t>(p));
}

void forget_mapped(const void* p, std::size_t n) {
    const auto begin = reinterpret_cast<uintptr_t>(p);
    {
        std::lock_guard<std::mutex> lock(g_mappings_mutex);
        auto it = g_mappings.upper_bound(begin);  // the first mapping starting after p
        if (it == g_mappings.begin()) return;
        --it;
        if (begin + n > it->second) return;  // not inside one mapping
    }
    forget_pages(p, n);
}

void forget_pages(const void* p, std::size_t n) {
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace quench
