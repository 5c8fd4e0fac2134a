#pragma once
// Writes a file under a temporary name in the target directory and renames it into place only when
// commit() succeeds, so a full disk, a read-only target or a kill mid-write never leaves a partial file
// under the final name (Tiled's SaveFile / QSaveFile idea, without Qt).
#include <cstddef>
#include <cstdio>
#include <string>

namespace quench {

class AtomicFile {
public:
    explicit AtomicFile(const std::string& final_path);  // opens "<dir>/.<name>.tmp-XXXXXX"; throws quench::Error
    ~AtomicFile();                                       // removes the temporary unless committed
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, std::size_t n);  // throws quench::Error (naming the final path) on ENOSPC etc.
    void commit();                                 // flush, fsync, rename; throws on failure
    const std::string& final_path() const { return final_path_; }

private:
    std::string final_path_;
    std::string tmp_path_;
    int fd_ = -1;
    bool committed_ = false;
};

// Convenience: atomically replace path with the given bytes.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace quench
