#pragma once
// A temporary file with no name: created in $TMPDIR (or /tmp, or a given directory) and unlinked at once,
// so nothing is left behind on success, error, cancel or a killed process. Jobs on big models keep what
// would otherwise grow with depth or data here (quantized codes, hidden states of many windows).
#include <cstddef>
#include <cstdint>
#include <string>

namespace quench {

class ScratchFile {
public:
    // prefix names the file while it exists ("quench-codes"); throws quench::Error naming the path.
    explicit ScratchFile(const std::string& prefix, const std::string& dir = "");
    ~ScratchFile();
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }  // for messages only: the name is gone
    // Whole writes and reads at an offset; a short write (a full disk) or read is a quench::Error naming the
    // file and what was being written (`what`: "quantized codes", "hidden states").
    void write_at(std::size_t offset, const void* data, std::size_t n, const std::string& what) const;
    void read_at(std::size_t offset, void* data, std::size_t n, const std::string& what) const;

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace quench
