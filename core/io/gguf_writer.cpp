#include "io/gguf_writer.h"

#include <cstring>
#include <limits>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"

namespace quench {

namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;

template <typename T>
std::vector<uint8_t> le_bytes(T v) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    std::vector<uint8_t> out(sizeof v);
    for (std::size_t i = 0; i < sizeof v; ++i) out[i] = uint8_t(bits >> (8 * i));
    return out;
}

void put_u32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
void put_u64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
void put_string(std::string& out, const std::string& s) {
    put_u64(out, s.size());
    out += s;
}

uint64_t raw_u64(const std::vector<uint8_t>& raw, std::size_t at, std::size_t n) {
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= uint64_t(raw[at + i]) << (8 * i);
    return v;
}

bool is_integer(GgufType t) {
    switch (t) {
        case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
        case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
        default: return false;
    }
}
bool is_signed(GgufType t) {
    return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

// Scalar at byte offset `at` of raw, as double (integers, floats, bool).
double scalar_as_double(GgufType t, const std::vector<uint8_t>& raw, std::size_t at) {
    const std::size_t n = gguf_scalar_size(t);
    const uint64_t bits = raw_u64(raw, at, n);
    switch (t) {
        case GgufType::F32: {
            float f;
            const uint32_t b32 = uint32_t(bits);
            std::memcpy(&f, &b32, 4);
            return f;
        }
        case GgufType::F64: {
            double d;
            std::memcpy(&d, &bits, 8);
            return d;
        }
        case GgufType::Bool: return bits != 0;
        default: break;
    }
    if (!is_signed(t)) return double(bits);
    const int shift = int(64 - 8 * n);  // sign-extend
    return double(int64_t(bits << shift) >> shift);
}

}  // namespace

const char* gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::U8: return "UINT8";
        case GgufType::I8: return "INT8";
        case GgufType::U16: return "UINT16";
        case GgufType::I16: return "INT16";
        case GgufType::U32: return "UINT32";
        case GgufType::I32: return "INT32";
        case GgufType::F32: return "FLOAT32";
        case GgufType::Bool: return "BOOL";
        case GgufType::String: return "STRING";
        case GgufType::Array: return "ARRAY";
        case GgufType::U64: return "UINT64";
        case GgufType::I64: return "INT64";
        case GgufType::F64: return "FLOAT64";
    }
    return "?";
}

std::size_t gguf_scalar_size(GgufType t) {
    switch (t) {
        case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
        case GgufType::U16: case GgufType::I16: return 2;
        case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
        case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
        default: return 0;
    }
}

// ---- GgufValue --------------------------------------------------------------------------------------------

GgufValue GgufValue::scalar(GgufType t, std::vector<uint8_t> le) {
    if (gguf_scalar_size(t) == 0 || le.size() != gguf_scalar_size(t))
        throw Error(std::string("GGUF value: ") + gguf_type_name(t) + " is not a scalar type of " +
                    std::to_string(le.size()) + " bytes");
    GgufValue v;
    v.type_ = t;
    v.raw_ = std::move(le);
    return v;
}
GgufValue GgufValue::u8(uint8_t x) { return scalar(GgufType::U8, le_bytes(x)); }
GgufValue GgufValue::i8(int8_t x) { return scalar(GgufType::I8, le_bytes(x)); }
GgufValue GgufValue::u16(uint16_t x) { return scalar(GgufType::U16, le_bytes(x)); }
GgufValue GgufValue::i16(int16_t x) { return scalar(GgufType::I16, le_bytes(x)); }
GgufValue GgufValue::u32(uint32_t x) { return scalar(GgufType::U32, le_bytes(x)); }
GgufValue GgufValue::i32(int32_t x) { return scalar(GgufType::I32, le_bytes(x)); }
GgufValue GgufValue::u64(uint64_t x) { return scalar(GgufType::U64, le_bytes(x)); }
GgufValue GgufValue::i64(int64_t x) { return scalar(GgufType::I64, le_bytes(x)); }
GgufValue GgufValue::f32(float x) { return scalar(GgufType::F32, le_bytes(x)); }
GgufValue GgufValue::f64(double x) { return scalar(GgufType::F64, le_bytes(x)); }
GgufValue GgufValue::boolean(bool x) { return scalar(GgufType::Bool, {uint8_t(x ? 1 : 0)}); }

GgufValue GgufValue::string(std::string s) {
    GgufValue v;
    v.type_ = GgufType::String;
    v.strings_.push_back(std::move(s));
    return v;
}

GgufValue GgufValue::string_array(std::vector<std::string> s) {
    GgufValue v;
    v.type_ = GgufType::Array;
    v.elem_ = GgufType::String;
    v.count_ = s.size();
    v.strings_ = std::move(s);
    return v;
}

GgufValue GgufValue::scalar_array(GgufType elem, uint64_t count, std::vector<uint8_t> le) {
    const std::size_t size = gguf_scalar_size(elem);
    if (size == 0 || le.size() / size != count || le.size() % size != 0)
        throw Error(std::string("GGUF value: array of ") + gguf_type_name(elem) + ": " + std::to_string(count) +
                    " elements do not fill " + std::to_string(le.size()) + " bytes");
    GgufValue v;
    v.type_ = GgufType::Array;
    v.elem_ = elem;
    v.count_ = count;
    v.raw_ = std::move(le);
    return v;
}

GgufValue GgufValue::f32_array(const std::vector<float>& x) {
    std::vector<uint8_t> raw;
    raw.reserve(4 * x.size());
    for (float f : x)
        for (uint8_t b : le_bytes(f)) raw.push_back(b);
    return scalar_array(GgufType::F32, x.size(), std::move(raw));
}

GgufValue GgufValue::i32_array(const std::vector<int32_t>& x) {
    std::vector<uint8_t> raw;
    raw.reserve(4 * x.size());
    for (int32_t i : x)
        for (uint8_t b : le_bytes(i)) raw.push_back(b);
    return scalar_array(GgufType::I32, x.size(), std::move(raw));
}

std::string GgufValue::describe() const {
    if (type_ != GgufType::Array) return gguf_type_name(type_);
    return std::string("ARRAY[") + gguf_type_name(elem_) + "] of " + std::to_string(count_);
}

uint64_t GgufValue::as_uint() const {
    if (!is_integer(type_)) throw Error("holds " + describe() + ", not an integer");
    if (is_signed(type_)) {
        const int64_t v = as_int();
        if (v < 0) throw Error("holds the negative value " + std::to_string(v));
        return uint64_t(v);
    }
    return raw_u64(raw_, 0, gguf_scalar_size(type_));
}

int64_t GgufValue::as_int() const {
    if (!is_integer(type_)) throw Error("holds " + describe() + ", not an integer");
    const std::size_t n = gguf_scalar_size(type_);
    const uint64_t bits = raw_u64(raw_, 0, n);
    if (is_signed(type_)) {
        const int shift = int(64 - 8 * n);  // sign-extend
        return int64_t(bits << shift) >> shift;
    }
    if (bits > uint64_t(std::numeric_limits<int64_t>::max()))
        throw Error("holds " + std::to_string(bits) + ", beyond int64");
    return int64_t(bits);
}

double GgufValue::as_float() const {
    if (type_ != GgufType::F32 && type_ != GgufType::F64) throw Error("holds " + describe() + ", not a float");
    return scalar_as_double(type_, raw_, 0);
}

bool GgufValue::as_bool() const {
    if (type_ != GgufType::Bool) throw Error("holds " + describe() + ", not a BOOL");
    return raw_[0] != 0;
}

const std::string& GgufValue::as_string() const {
    if (type_ != GgufType::String) throw Error("holds " + describe() + ", not a STRING");
    return strings_[0];
}

const std::vector<std::string>& GgufValue::strings() const {
    if (type_ != GgufType::Array || elem_ != GgufType::String)
        throw Error("holds " + describe() + ", not an ARRAY[STRING]");
    return strings_;
}

double GgufValue::number_at(uint64_t i) const {
    if (type_ != GgufType::Array || gguf_scalar_size(elem_) == 0)
        throw Error("holds " + describe() + ", not a numeric array");
    if (i >= count_) throw Error("index " + std::to_string(i) + " beyond " + describe());
    return scalar_as_double(elem_, raw_, std::size_t(i) * gguf_scalar_size(elem_));
}

void GgufValue::encode(std::string& out) const {
    put_u32(out, uint32_t(type_));
    if (type_ == GgufType::String) {
        put_string(out, strings_[0]);
    } else if (type_ == GgufType::Array) {
        put_u32(out, uint32_t(elem_));
        put_u64(out, count_);
        if (elem_ == GgufType::String)
            for (const std::string& s : strings_) put_string(out, s);
        else
            out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
    } else {
        out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
    }
}

// ---- GgufWriter -------------------------------------------------------------------------------------------

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        throw Error("GGUF writer: general.alignment " + std::to_string(alignment) + " is not a power of two");
    if (alignment != kDefaultAlignment) kv_.emplace_back("general.alignment", GgufValue::u32(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
    if (key.empty()) throw Error("GGUF writer: empty metadata key");
    if (key == "general.alignment") throw Error("GGUF writer: general.alignment is set by the constructor");
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, Producer produce) {
    const std::string where = "GGUF writer: tensor '" + name + "': ";
    if (name.empty() || name.size() > kGgufMaxNameBytes)
        throw Error(where + "name must be 1 to " + std::to_string(kGgufMaxNameBytes) + " bytes");
    for (const Tensor& t : tensors_)
        if (t.name == name) throw Error(where + "added twice");
    if (ne.empty() || ne.size() > std::size_t(kGgufMaxDims))
        throw Error(where + std::to_string(ne.size()) + " dims; GGUF tensors have 1 to 4");
    uint64_t rows = 1;
    for (std::size_t i = 0; i < ne.size(); ++i) {
        if (ne[i] <= 0) throw Error(where + "dim " + std::to_string(i) + " is " + std::to_string(ne[i]));
        if (i > 0 && __builtin_mul_overflow(rows, uint64_t(ne[i]), &rows)) throw Error(where + "too many elements");
    }
    const std::size_t row_bytes = [&] {
        try {
            return ggml_row_bytes(type, ne[0]);
        } catch (const Error& e) {
            throw Error(where + e.what());
        }
    }();
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(uint64_t(row_bytes), rows, &nbytes)) throw Error(where + "too many bytes");
    if (!produce) throw Error(where + "no data producer");
    tensors_.push_back({name, std::move(ne), type, data_bytes_, nbytes, std::move(produce)});
    data_bytes_ += (nbytes + alignment_ - 1) / alignment_ * alignment_;
}

std::string GgufWriter::encode_header() const {
    std::string out = "GGUF";
    put_u32(out, kGgufVersion);
    put_u64(out, tensors_.size());
    put_u64(out, kv_.size());
    for (const auto& [key, value] : kv_) {
        put_string(out, key);
        value.encode(out);
    }
    for (const Tensor& t : tensors_) {
        put_string(out, t.name);
        put_u32(out, uint32_t(t.ne.size()));
        for (int64_t d : t.ne) put_u64(out, uint64_t(d));
        put_u32(out, uint32_t(t.type));
        put_u64(out, t.offset);
    }
    out.append((alignment_ - out.size() % alignment_) % alignment_, '\0');
    return out;
}

void GgufWriter::write(const std::string& path, ProgressSink* progress) const {
    ProgressSink& p = progress ? *progress : null_progress();
    p.check();
    const std::string header = encode_header();
    AtomicFile out(path);
    out.write(header.data(), header.size());
    static const char zeros[256] = {};
    uint64_t done = 0;
    for (const Tensor& t : tensors_) {
        p.check();
        p.report(data_bytes_ ? double(done) / double(data_bytes_) : 0.0, "writing " + t.name);
        uint64_t produced = 0;
        const ChunkSink sink = [&](const void* data, std::size_t n) {
            if (produced + n > t.nbytes)
                throw Error(path + ": tensor '" + t.name + "': producer wrote more than its " +
                            std::to_string(t.nbytes) + " bytes");
            out.write(data, n);
            produced += n;
        };
        t.produce(sink);
        if (produced != t.nbytes)
            throw Error(path + ": tensor '" + t.name + "': producer wrote " + std::to_string(produced) + " of " +
                        std::to_string(t.nbytes) + " bytes");
        uint64_t pad = (alignment_ - t.nbytes % alignment_) % alignment_;
        while (pad > 0) {
            const std::size_t n = std::size_t(std::min<uint64_t>(pad, sizeof zeros));
            out.write(zeros, n);
            pad -= n;
        }
        done = t.offset + t.nbytes;
    }
    p.check();
    out.commit();
    p.report(1.0, "written");
}

}  // namespace quench
