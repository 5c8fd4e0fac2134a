#pragma once
// A read-only view of a whole file through mmap. Mapped MAP_PRIVATE, so pages are shared with the page
// cache (no copy) and an accidental write can never reach the user's checkpoint on disk.
#include <cstddef>
#include <cstdint>
#include <string>

namespace quench {

class MappedFile {
public:
    explicit MappedFile(const std::string& path);  // throws quench::Error naming the path
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace quench
