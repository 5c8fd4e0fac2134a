#pragma once
// Writes a .safetensors file (header padded to 8 bytes, tensors in the order added) atomically.
// Data is streamed from the caller's buffers: nothing is copied into a second in-memory model.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace quench {

class ProgressSink;

class SafetensorsWriter {
public:
    // The data pointer must stay valid until write() returns.
    void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, std::size_t nbytes);
    void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
    void write(const std::string& path) const;  // atomic; throws quench::Error

private:
    struct Item { std::string name; DType dtype; std::vector<int64_t> shape; const void* data; std::size_t nbytes; };
    std::vector<Item> items_;
    std::map<std::string, std::string> metadata_;
};

// A safetensors file whose tensor data is produced while the file is written: the header (names, dtypes,
// shapes, offsets) is known up front, the bytes of each tensor are asked for in turn and written at once.
// The file format is the one SafetensorsWriter writes (8-byte length, JSON header padded with spaces to a
// multiple of 8); this streaming form exists because SafetensorsWriter needs every tensor's bytes alive
// until write() returns, which for a converted (F16/BF16) export would be a second copy of the model.
class SafetensorsStream {
public:
    using ByteSink = std::function<void(const void* data, std::size_t n)>;
    // Called once, during write(); must pass exactly nbytes bytes to the sink (in any number of calls).
    using Producer = std::function<void(const ByteSink& sink)>;

    void add(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer produce);
    // Raw bytes that stay valid until write() returns (a mapped source tensor, a part held in memory).
    void add_bytes(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                   std::size_t nbytes);
    void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
    // Tensors are laid out in order of decreasing element size (then in the order added), so every tensor
    // starts at a multiple of its element size without padding, as HF's safetensors writer does.
    // Writes atomically; checks progress for cancellation between tensors. Returns the file size.
    uint64_t write(const std::string& path, ProgressSink* progress = nullptr) const;

private:
    struct Item {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        uint64_t nbytes;
        Producer produce;
    };
    std::vector<Item> items_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace quench
