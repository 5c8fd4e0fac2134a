#pragma once
// Reads a GGUF file (v2 or v3; same layout) through a memory map: the metadata is parsed up front, tensor
// data stays in the mapping until asked for. Every bound is checked, so a truncated or lying file gives a
// quench::Error naming the file and the field ("m.gguf: tensor 'blk.0.attn_q.weight': data [4096, 8192)
// runs past the end of the file"), never a crash. Hand-written: Debian packages no GGUF library.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "quant/ggml_blocks.h"
#include "io/gguf_writer.h"
#include "model/mapped_file.h"

namespace quench {

struct GgufTensorInfo {
    std::string name;
    std::vector<int64_t> ne;  // ggml order: ne[0] is the row length
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;  // inside the data section
    uint64_t nbytes = 0;
    int64_t n_elements() const;
    int64_t rows() const { return ne.empty() ? 0 : n_elements() / ne[0]; }
};

class GgufReader {
public:
    explicit GgufReader(const std::string& path);  // throws quench::Error naming path and field

    const std::string& path() const { return file_.path(); }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }  // file order
    bool has(const std::string& key) const { return index_.count(key) != 0; }
    const GgufValue& get(const std::string& key) const;  // throws naming the file and the missing key
    // Typed access; errors name the file, the key and what it holds instead.
    std::string get_string(const std::string& key) const;
    uint64_t get_uint(const std::string& key) const;
    int64_t get_int(const std::string& key) const;
    double get_float(const std::string& key) const;
    bool get_bool(const std::string& key) const;

    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent
    const GgufTensorInfo& tensor(const std::string& name) const;       // throws when absent
    const uint8_t* tensor_data(const GgufTensorInfo& t) const { return file_.data() + data_offset_ + t.offset; }
    // The tensor decoded to floats, row-major over ne (ne[0] fastest).
    std::vector<float> dequantize(const std::string& name) const;

private:
    MappedFile file_;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::map<std::string, std::size_t> index_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, std::size_t> tensor_index_;
};

}  // namespace quench
