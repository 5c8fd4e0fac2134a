#include "io/gguf_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "io/gguf_writer.h"  // the format limits

namespace quench {

namespace {

// Bounds-checked little-endian reads over the mapping; `what` names the field for the error message.
class Cursor {
public:
    Cursor(const std::string& path, const uint8_t* data, std::size_t size) : path_(path), data_(data), size_(size) {}

    std::size_t pos() const { return pos_; }
    std::size_t remaining() const { return size_ - pos_; }

    const uint8_t* take(uint64_t n, const std::string& what) {
        if (n > remaining())
            throw Error(path_ + ": " + what + ": file truncated (needs " + std::to_string(n) + " bytes at offset " +
                        std::to_string(pos_) + ", file is " + std::to_string(size_) + " bytes)");
        const uint8_t* p = data_ + pos_;
        pos_ += std::size_t(n);
        return p;
    }
    uint64_t uint(std::size_t n, const std::string& what) {
        const uint8_t* p = take(n, what);
        uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
        return v;
    }
    uint32_t u32(const std::string& what) { return uint32_t(uint(4, what)); }
    uint64_t u64(const std::string& what) { return uint(8, what); }
    std::string str(const std::string& what) {
        const uint64_t n = u64(what + " length");
        const uint8_t* p = take(n, what);
        return std::string(reinterpret_cast<const char*>(p), std::size_t(n));
    }

private:
    const std::string& path_;
    const uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

bool known_value_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

GgufValue read_value(Cursor& c, uint32_t type, const std::string& where, const std::string& path) {
    if (!known_value_type(type)) throw Error(path + ": " + where + ": unknown value type " + std::to_string(type));
    const GgufType t = GgufType(type);
    if (t == GgufType::String) return GgufValue::string(c.str(where));
    if (t != GgufType::Array) {
        const std::size_t n = gguf_scalar_size(t);
        const uint8_t* p = c.take(n, where);
        return GgufValue::scalar(t, std::vector<uint8_t>(p, p + n));
    }
    const uint32_t elem = c.u32(where + " element type");
    if (!known_value_type(elem))
        throw Error(path + ": " + where + ": unknown array element type " + std::to_string(elem));
    if (GgufType(elem) == GgufType::Array) throw Error(path + ": " + where + ": arrays of arrays are not supported");
    const uint64_t count = c.u64(where + " element count");
    if (GgufType(elem) == GgufType::String) {
        // Each string needs at least its 8-byte length, so a lying count fails here instead of in a huge loop.
        if (count > c.remaining() / 8)
            throw Error(path + ": " + where + ": " + std::to_string(count) + " strings cannot fit in the " +
                        std::to_string(c.remaining()) + " bytes left");
        std::vector<std::string> s;
        s.reserve(std::size_t(std::min<uint64_t>(count, 1u << 20)));  // grows past that only as strings parse
        for (uint64_t i = 0; i < count; ++i) s.push_back(c.str(where + "[" + std::to_string(i) + "]"));
        return GgufValue::string_array(std::move(s));
    }
    const std::size_t size = gguf_scalar_size(GgufType(elem));
    if (count > c.remaining() / size)
        throw Error(path + ": " + where + ": " + std::to_string(count) + " elements of " +
                    gguf_type_name(GgufType(elem)) + " run past the end of the file");
    const uint8_t* p = c.take(count * size, where);
    return GgufValue::scalar_array(GgufType(elem), count, std::vector<uint8_t>(p, p + count * size));
}

}  // namespace

int64_t GgufTensorInfo::n_elements() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

GgufReader::GgufReader(const std::string& path) : file_(path) {
    Cursor c(path, file_.data(), file_.size());
    const uint8_t* magic = c.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) {
        std::string shown;
        for (int i = 0; i < 4; ++i) shown += (magic[i] >= 32 && magic[i] < 127) ? char(magic[i]) : '?';
        throw Error(path + ": magic: '" + shown + "' is not 'GGUF' (not a GGUF file)");
    }
    version_ = c.u32("version");
    // v1 used 32-bit counts; v2 and v3 share this layout (v3 only added big-endian files, which carry the
    // version byte-swapped and so fail here too).
    if (version_ != 2 && version_ != 3)
        throw Error(path + ": version: unsupported GGUF version " + std::to_string(version_) + " (2 and 3 are read)");
    const uint64_t n_tensors = c.u64("tensor count");
    const uint64_t n_kv = c.u64("metadata kv count");

    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string key = c.str("metadata key " + std::to_string(i));
        const std::string where = "key '" + key + "'";
        const uint32_t type = c.u32(where + " type");
        GgufValue value = read_value(c, type, where, path);
        if (index_.count(key)) throw Error(path + ": " + where + ": appears twice");
        index_[key] = kv_.size();
        kv_.emplace_back(key, std::move(value));
    }
    if (has("general.alignment")) {
        const GgufValue& a = get("general.alignment");
        if (a.type() != GgufType::U32)
            throw Error(path + ": key 'general.alignment': holds " + a.describe() + ", not UINT32");
        alignment_ = uint32_t(a.as_uint());
        if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
            throw Error(path + ": key 'general.alignment': " + std::to_string(alignment_) + " is not a power of two");
    }

    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensorInfo t;
        t.name = c.str("tensor info " + std::to_string(i) + " name");
        if (t.name.empty() || t.name.size() > kGgufMaxNameBytes)
            throw Error(path + ": tensor info " + std::to_string(i) + ": name of " + std::to_string(t.name.size()) +
                        " bytes (GGUF allows 1 to " + std::to_string(kGgufMaxNameBytes) + ")");
        const std::string where = "tensor '" + t.name + "'";
        const uint32_t n_dims = c.u32(where + " n_dims");
        if (n_dims == 0 || n_dims > kGgufMaxDims)
            throw Error(path + ": " + where + ": n_dims " + std::to_string(n_dims) + " (GGUF tensors have 1 to 4)");
        uint64_t elems = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t v = c.u64(where + " dim " + std::to_string(d));
            if (v == 0 || v > uint64_t(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(elems, v, &elems) ||
                elems > uint64_t(std::numeric_limits<int64_t>::max()))
                throw Error(path + ": " + where + ": dim " + std::to_string(d) + " = " + std::to_string(v) +
                            " is zero or overflows");
            t.ne.push_back(int64_t(v));
        }
        const uint32_t type = c.u32(where + " type");
        const GgmlTypeInfo* info = ggml_type_info_raw(type);
        if (!info) throw Error(path + ": " + where + ": unknown or unsupported ggml type " + std::to_string(type));
        t.type = info->type;
        if (t.ne[0] % info->block_elems != 0)
            throw Error(path + ": " + where + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                        info->name + " block (" + std::to_string(info->block_elems) + ")");
        t.offset = c.u64(where + " offset");
        if (t.offset % alignment_ != 0)
            throw Error(path + ": " + where + ": offset " + std::to_string(t.offset) +
                        " is not a multiple of the alignment " + std::to_string(alignment_));
        // elems / block_elems blocks; fits in 64 bits since elems < 2^63 and a block is at most 210 bytes
        // per 256 elements or 4 bytes per element (checked against the file size below anyway).
        if (__builtin_mul_overflow(elems / uint64_t(info->block_elems), uint64_t(info->block_bytes), &t.nbytes))
            throw Error(path + ": " + where + ": byte size overflows");
        if (tensor_index_.count(t.name)) throw Error(path + ": " + where + ": appears twice");
        tensor_index_[t.name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }

    data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
    const uint64_t data_size = data_offset_ <= file_.size() ? file_.size() - data_offset_ : 0;
    if (!tensors_.empty() && data_offset_ > file_.size())
        throw Error(path + ": data section: starts at " + std::to_string(data_offset_) + ", past the end of the " +
                    std::to_string(file_.size()) + "-byte file");
    for (const GgufTensorInfo& t : tensors_) {
        uint64_t end = 0;
        if (__builtin_add_overflow(t.offset, t.nbytes, &end) || end > data_size)
            throw Error(path + ": tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", " +
                        (end < t.offset ? std::string("overflow") : std::to_string(end)) +
                        ") runs past the end of the file (data section is " + std::to_string(data_size) + " bytes)");
    }
}

const GgufValue& GgufReader::get(const std::string& key) const {
    auto it = index_.find(key);
    if (it == index_.end()) throw Error(path() + ": key '" + key + "': missing");
    return kv_[it->second].second;
}

namespace {
template <typename F>
auto typed(const GgufReader& r, const std::string& key, F&& f) {
    const GgufValue& v = r.get(key);
    try {
        return f(v);
    } catch (const Error& e) {
        throw Error(r.path() + ": key '" + key + "': " + e.what());
    }
}
}  // namespace

std::string GgufReader::get_string(const std::string& key) const {
    return typed(*this, key, [](const GgufValue& v) { return v.as_string(); });
}
uint64_t GgufReader::get_uint(const std::string& key) const {
    return typed(*this, key, [](const GgufValue& v) { return v.as_uint(); });
}
int64_t GgufReader::get_int(const std::string& key) const {
    return typed(*this, key, [](const GgufValue& v) { return v.as_int(); });
}
double GgufReader::get_float(const std::string& key) const {
    return typed(*this, key, [](const GgufValue& v) { return v.as_float(); });
}
bool GgufReader::get_bool(const std::string& key) const {
    return typed(*this, key, [](const GgufValue& v) { return v.as_bool(); });
}

const GgufTensorInfo* GgufReader::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufReader::tensor(const std::string& name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (!t) throw Error(path() + ": tensor '" + name + "': missing");
    return *t;
}

std::vector<float> GgufReader::dequantize(const std::string& name) const {
    const GgufTensorInfo& t = tensor(name);
    std::vector<float> out(std::size_t(t.n_elements()));
    const uint8_t* src = tensor_data(t);
    const std::size_t row_bytes = ggml_row_bytes(t.type, t.ne[0]);
    for (int64_t r = 0; r < t.rows(); ++r)
        ggml_dequantize_row(t.type, src + std::size_t(r) * row_bytes, t.ne[0], out.data() + std::size_t(r * t.ne[0]));
    return out;
}

}  // namespace quench
