#pragma once
// The hidden states of many windows between two transformer blocks: what a block-major pass keeps while it
// runs one block over every window before the next (a block's weights are then read once per pass, not once
// per batch of windows). Batches stay in memory up to a cap; past it they live in an unlinked scratch file
// (common/scratch_file.h), read back one batch at a time, so the memory of a pass over N windows is the cap
// plus one batch, whatever N is.
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quench {

class ScratchFile;

class HiddenStates {
public:
    static constexpr int64_t kDefaultMemoryCap = int64_t(512) << 20;
    // memory_cap: bytes of batches kept in memory (0: every batch goes to the file); dir: where the scratch
    // file goes (default $TMPDIR, else /tmp), created only when a batch spills.
    explicit HiddenStates(int64_t memory_cap = kDefaultMemoryCap, std::string dir = "");
    ~HiddenStates();
    HiddenStates(const HiddenStates&) = delete;
    HiddenStates& operator=(const HiddenStates&) = delete;

    // Adds a batch (any fp32 tensor; copied or written out); its shape is the batch's for good.
    void append(const at::Tensor& batch);
    std::size_t size() const { return slots_.size(); }
    // Batch i as fp32 (a resident batch is returned as is: callers must not write into it).
    at::Tensor get(std::size_t i) const;
    // Replaces batch i by one of the same shape. Throws quench::Error on another shape or a failed write.
    void set(std::size_t i, const at::Tensor& batch);
    int64_t spilled_bytes() const { return file_bytes_; }

private:
    struct Slot {
        std::vector<int64_t> shape;
        at::Tensor resident;   // defined when in memory
        std::size_t offset = 0;  // else its bytes in the file
    };
    void write_slot(const Slot& s, const at::Tensor& batch);
    int64_t memory_cap_;
    std::string dir_;
    int64_t resident_bytes_ = 0, file_bytes_ = 0;
    std::vector<Slot> slots_;
    std::unique_ptr<ScratchFile> file_;
};

}  // namespace quench
