#pragma once
// Keeps quantized layers' codes out of resident memory: a job over a 7B model makes gigabytes of codes
// (4-bit codes of Llama-2-7B are 3.4 GB), and holding them all would make its peak grow with depth. spill()
// writes a tensor's large parts (codes, scales) to an unlinked temporary file and gives them back as views
// of that file mapped read-only, so they count against the resident set only while a pass or a writer reads
// them; forget() drops them again after such a read. The file has no name from the start, so it is gone when
// the last view is, on success, error, cancel or a killed process alike.
#include <cstddef>
#include <memory>
#include <string>

#include "common/scratch_file.h"
#include "quant/quantized_tensor.h"

namespace quench {

class PartSpill {
public:
    // The temporary file goes in dir (default: $TMPDIR, else /tmp); throws quench::Error naming it.
    explicit PartSpill(const std::string& dir = "");

    // q with every unshared part of at least kMinBytes as a file-backed view (same dtype, shape and bytes);
    // other parts are kept as they are. Throws quench::Error on a write failure (a full disk).
    QuantizedTensor spill(const QuantizedTensor& q);
    static constexpr std::size_t kMinBytes = 64 * 1024;
    std::size_t bytes() const { return bytes_; }  // written so far

private:
    ScratchFile file_;
    std::size_t bytes_ = 0;
};

// Drops the resident pages of q's parts that are file pages (spilled here, or views of a packed checkpoint's
// mapping); parts in ordinary memory are untouched.
void forget(const QuantizedTensor& q);

}  // namespace quench
