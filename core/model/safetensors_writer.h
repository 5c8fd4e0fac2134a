#pragma once
// Writes a .safetensors file (header padded to 8 bytes, tensors in the order added) atomically.
// Data is streamed from the caller's buffers: nothing is copied into a second in-memory model.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace quench {

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

}  // namespace quench
