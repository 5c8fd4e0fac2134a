#include "model/safetensors_writer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"

namespace quench {

namespace {

// What both writers check of a tensor they are given: a free, non-reserved name, a known dtype, no negative
// dimension. Returns its size in bytes; `overflow` is set when that passes 2^64.
template <typename Items>
uint64_t checked_size(const std::string& where, const std::string& name, DType dtype,
                      const std::vector<int64_t>& shape, const Items& items, bool& overflow) {
    if (name == "__metadata__") throw Error(where + "name is reserved by the safetensors format");
    if (dtype_size(dtype) == 0) throw Error(where + "invalid dtype");
    for (const auto& it : items)
        if (it.name == name) throw Error(where + "added twice");
    uint64_t n = dtype_size(dtype);
    overflow = false;
    for (int64_t d : shape) {
        if (d < 0) throw Error(where + "negative dimension " + std::to_string(d));
        overflow |= __builtin_mul_overflow(n, uint64_t(d), &n);
    }
    return n;
}

}  // namespace

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            std::size_t nbytes) {
    const std::string where = "tensor '" + name + "': ";
    bool overflow = false;
    const uint64_t need = checked_size(where, name, dtype, shape, items_, overflow);
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

void SafetensorsStream::add(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer produce) {
    const std::string where = "tensor '" + name + "': ";
    bool overflow = false;
    const uint64_t n = checked_size(where, name, dtype, shape, items_, overflow);
    if (overflow) throw Error(where + "size overflows 64 bits");
    items_.push_back({name, dtype, std::move(shape), n, std::move(produce)});
}

void SafetensorsStream::add_bytes(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                                  std::size_t nbytes) {
    add(name, dtype, std::move(shape), [data, nbytes](const ByteSink& sink) { sink(data, nbytes); });
}

uint64_t SafetensorsStream::write(const std::string& path, ProgressSink* progress) const {
    ProgressSink& prog = progress ? *progress : null_progress();
    std::vector<const Item*> order;
    for (const Item& it : items_) order.push_back(&it);
    std::stable_sort(order.begin(), order.end(),
                     [](const Item* a, const Item* b) { return dtype_size(a->dtype) > dtype_size(b->dtype); });

    // ordered_json keeps __metadata__ first and tensors in data order, as SafetensorsWriter does.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Item* it : order) {
        header[it->name] = {
            {"dtype", dtype_name(it->dtype)}, {"shape", it->shape}, {"data_offsets", {offset, offset + it->nbytes}}};
        offset += it->nbytes;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        throw Error(path + ": cannot encode header: " + e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');  // data section 8-byte aligned
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));  // little-endian

    AtomicFile out(path);
    out.write(len, sizeof len);
    out.write(text.data(), text.size());
    uint64_t done = 0;
    for (const Item* it : order) {
        prog.check();
        uint64_t written = 0;
        it->produce([&](const void* data, std::size_t n) {
            written += n;
            if (written > it->nbytes) return;  // reported below; never write past the header's extent
            out.write(data, n);
        });
        if (written != it->nbytes)
            throw Error(path + ": tensor '" + it->name + "': produced " + std::to_string(written) +
                        " bytes, the header says " + std::to_string(it->nbytes));
        done += it->nbytes;
        prog.report(offset ? static_cast<double>(done) / static_cast<double>(offset) : 1.0, "writing " + it->name);
    }
    prog.check();
    out.commit();
    return sizeof len + text.size() + offset;
}

}  // namespace quench
