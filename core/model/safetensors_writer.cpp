#include "model/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

namespace quench {

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            std::size_t nbytes) {
    const std::string where = "tensor '" + name + "': ";
    if (name == "__metadata__") throw Error(where + "name is reserved by the safetensors format");
    if (dtype_size(dtype) == 0) throw Error(where + "invalid dtype");
    for (const Item& it : items_)
        if (it.name == name) throw Error(where + "added twice");
    uint64_t need = dtype_size(dtype);
    bool overflow = false;
    for (int64_t d : shape) {
        if (d < 0) throw Error(where + "negative dimension " + std::to_string(d));
        overflow |= __builtin_mul_overflow(need, uint64_t(d), &need);
    }
    if (overflow || need != nbytes)
        throw Error(where + "shape and dtype " + dtype_name(dtype) + " need " +
                    (overflow ? std::string("more than 2^64") : std::to_string(need)) + " bytes, got " +
                    std::to_string(nbytes));
    if (nbytes > 0 && !data) throw Error(where + "null data");
    items_.push_back({name, dtype, std::move(shape), data, nbytes});
}

void SafetensorsWriter::write(const std::string& path) const {
    // ordered_json keeps __metadata__ first and tensors in the order added, matching the data layout.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Item& it : items_) {
        header[it.name] = {{"dtype", dtype_name(it.dtype)},
                           {"shape", it.shape},
                           {"data_offsets", {offset, offset + it.nbytes}}};
        offset += it.nbytes;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {  // e.g. a name or metadata value that is not UTF-8
        throw Error(path + ": cannot encode header: " + e.what());
    }
    // Spaces up to a multiple of 8 make the data section start 8-byte aligned, so a reader can map
    // F32/F64/I64 tensors in place.
    text.append((8 - text.size() % 8) % 8, ' ');

    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));  // little-endian
    AtomicFile out(path);
    out.write(len, sizeof len);
    out.write(text.data(), text.size());
    for (const Item& it : items_)
        if (it.nbytes) out.write(it.data, it.nbytes);
    out.commit();
}

}  // namespace quench
