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

// Gives back the memory of the whole pages inside [p, p + n) (MADV_PAGEOUT): for a mapped file's pages, which
// are read again from the file when touched, this is how a copy that took their place (a re-laid layout)
// avoids holding the data twice. Contents are kept whatever the memory (anonymous pages are swapped out or
// stay), so it is safe on any address; a hint only, so errors (a kernel before 5.4) are ignored.
void release_pages(const void* p, std::size_t n);

// Drops the whole pages inside [p, p + n) of a read-only use of a mapped file from this process (MADV_DONTNEED)
// while the page cache keeps them: the next touch maps them again without reading the disk. How a streamed
// pass over a model larger than memory keeps its resident set at one block: each block's weights are
// forgotten after the block ran. Only for pages never written (a private copy would be lost); a hint, so
// errors are ignored.
void forget_pages(const void* p, std::size_t n);

// Mappings of files this process only reads (every MappedFile, and quant/spilled_parts.h's code files)
// register themselves, so that code holding any tensor can drop its pages when they lie in one: forget_mapped
// is forget_pages for registered file pages and does nothing to other memory, where MADV_DONTNEED would zero
// heap data.
void register_mapping(const void* p, std::size_t n);
void unregister_mapping(const void* p);
void forget_mapped(const void* p, std::size_t n);

}  // namespace quench
