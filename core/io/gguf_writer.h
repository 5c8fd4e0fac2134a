#pragma once
// The GGUF v3 container (llama.cpp's model file), written atomically:
//   "GGUF" | u32 version 3 | u64 tensor count | u64 kv count | kvs | tensor infos | pad | data
// KVs are typed (u8..f64, bool, string, arrays of one of those); tensor infos hold the name, dims in ggml
// order (ne[0] = the contiguous row length), the ggml type and the offset inside the data section. Every
// tensor's data starts at a multiple of the alignment (general.alignment, 32 unless set otherwise).
// Hand-written because no GGUF library is packaged in Debian; the format is ggml's docs/gguf.md.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "quant/ggml_blocks.h"

namespace quench {

// The format's limits, shared by the reader and the writer.
constexpr std::size_t kGgufMaxNameBytes = 63;  // ggml's GGML_MAX_NAME is 64 including the terminating NUL
constexpr uint32_t kGgufMaxDims = 4;           // GGML_MAX_DIMS

class ProgressSink;

enum class GgufType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
    U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);  // "UINT32", "STRING", ...
// Bytes of one scalar of type t (0 for String and Array, whose size depends on the value).
std::size_t gguf_scalar_size(GgufType t);

// One metadata value: a scalar, a string, or an array of scalars or strings (arrays of arrays are not
// used by llama.cpp and are not supported).
class GgufValue {
public:
    static GgufValue u8(uint8_t v);
    static GgufValue i8(int8_t v);
    static GgufValue u16(uint16_t v);
    static GgufValue i16(int16_t v);
    static GgufValue u32(uint32_t v);
    static GgufValue i32(int32_t v);
    static GgufValue u64(uint64_t v);
    static GgufValue i64(int64_t v);
    static GgufValue f32(float v);
    static GgufValue f64(double v);
    static GgufValue boolean(bool v);
    static GgufValue string(std::string v);
    static GgufValue string_array(std::vector<std::string> v);
    static GgufValue f32_array(const std::vector<float>& v);
    static GgufValue i32_array(const std::vector<int32_t>& v);
    // count scalars of type elem, little-endian as in the file (the reader's constructor).
    static GgufValue scalar_array(GgufType elem, uint64_t count, std::vector<uint8_t> le_bytes);
    static GgufValue scalar(GgufType t, std::vector<uint8_t> le_bytes);

    GgufType type() const { return type_; }
    GgufType array_type() const { return elem_; }  // element type when type() == Array
    uint64_t array_size() const { return count_; }

    // Conversions; each throws quench::Error saying what the value holds instead (callers add the key).
    uint64_t as_uint() const;  // any integer type holding a value >= 0
    int64_t as_int() const;    // any integer type that fits in int64
    double as_float() const;   // F32 or F64
    bool as_bool() const;
    const std::string& as_string() const;
    const std::vector<std::string>& strings() const;  // string arrays
    double number_at(uint64_t i) const;                // element i of a numeric array, as double
    std::string describe() const;                       // "UINT32", "ARRAY[STRING] of 2048", ...

    void encode(std::string& out) const;  // type tag and payload as GGUF stores them

private:
    GgufType type_ = GgufType::U8;
    GgufType elem_ = GgufType::U8;
    uint64_t count_ = 0;
    std::vector<uint8_t> raw_;          // scalar or numeric array payload, little-endian
    std::vector<std::string> strings_;  // String (one element) or string arrays
};

class GgufWriter {
public:
    // Receives the tensor's bytes in order, in chunks of any size; the writer checks the total.
    using ChunkSink = std::function<void(const void* data, std::size_t n)>;
    using Producer = std::function<void(const ChunkSink& sink)>;

    // alignment: a power of two; anything but 32 is recorded as general.alignment.
    explicit GgufWriter(uint32_t alignment = 32);

    // Adds or replaces a key (file order = first insertion). general.alignment belongs to the constructor.
    void set(const std::string& key, GgufValue value);
    // ne in ggml order: ne[0] is the contiguous row length and must be a multiple of the type's block size;
    // 1 to 4 dims. produce is called once, during write(), and must emit exactly the tensor's byte size.
    void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, Producer produce);

    std::size_t tensor_count() const { return tensors_.size(); }
    uint64_t data_bytes() const { return data_bytes_; }  // the data section's size, padding included

    // Writes the whole file through AtomicFile; throws quench::Error naming the path (and the tensor when
    // a producer misbehaves) or quench::Cancelled; either way nothing appears under path.
    void write(const std::string& path, ProgressSink* progress = nullptr) const;

private:
    struct Tensor {
        std::string name;
        std::vector<int64_t> ne;
        GgmlType type;
        uint64_t offset;
        uint64_t nbytes;
        Producer produce;
    };
    std::string encode_header() const;

    uint32_t alignment_;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<Tensor> tensors_;
    uint64_t data_bytes_ = 0;
};

}  // namespace quench
