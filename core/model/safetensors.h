#pragma once
// Reader for one .safetensors file: 8-byte little-endian header length, a JSON header, then the data.
// Every field is validated so a truncated or lying file fails with an error naming the file and field.
// Hand-written on purpose: the format is a few lines of spec (github.com/huggingface/safetensors) and no
// maintained C++ library is packaged for Debian; the JSON part is parsed by nlohmann-json.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/mapped_file.h"

namespace quench {

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // byte offsets relative to the start of the data section
    uint64_t end = 0;
    int64_t numel() const;
    uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);  // maps and validates; throws quench::Error

    const std::string& path() const { return file_->path(); }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
    const TensorInfo* find(const std::string& name) const;              // nullptr when absent
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    // Pointer to the first byte of a tensor's data inside the mapping (valid while this object lives).
    const uint8_t* data(const TensorInfo& t) const { return file_->data() + data_start_ + t.begin; }
    uint64_t file_size() const { return file_->size(); }

private:
    std::shared_ptr<MappedFile> file_;
    uint64_t data_start_ = 0;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace quench
