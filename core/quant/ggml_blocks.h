#pragma once
// ggml's tensor types and their block encodings, byte for byte as llama.cpp reads them (ggml-common.h),
// over plain float arrays. No LibTorch: the GGUF writer, the reader, `quench-cli info` and the codec table (a
// row may name the type its setting exports as) share it; it sits in quant, below the exporters, for the table.
//
// Why hand-written: no ggml/GGUF library is packaged in Debian, and the block layouts are a small, fixed
// contract. The decode formulas (the contract with llama.cpp) are spelled out in docs/gguf-export.md; the
// quantizers are our own and simpler than ggml's (fewer scale candidates, no importance weights), but every
// block they produce decodes in ggml to exactly what ggml_dequantize_row() returns here.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quench {

// ggml_type values as stored in GGUF tensor infos (gaps are types we neither write nor read).
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14,
};

struct GgmlTypeInfo {
    GgmlType type;
    const char* name;       // "Q4_K", as llama.cpp prints it
    int block_elems;        // elements per block: 1 (F32/F16), 32 (legacy quants), 256 (K-quants)
    int block_bytes;        // bytes per block
    bool is_k_quant() const { return block_elems == 256; }
    double bits_per_weight() const { return 8.0 * block_bytes / block_elems; }
};

// Every type this file supports, in enum order.
const std::vector<GgmlTypeInfo>& ggml_types();
const GgmlTypeInfo& ggml_type_info(GgmlType t);
// nullptr when raw is not a supported ggml_type value (a reader's "unknown type" check).
const GgmlTypeInfo* ggml_type_info_raw(uint32_t raw);
const char* ggml_type_name(GgmlType t);
std::optional<GgmlType> ggml_type_from_name(const std::string& name);  // "q4_k" or "Q4_K"

// Bytes one row of n elements takes; throws quench::Error when n is not a multiple of the block size.
std::size_t ggml_row_bytes(GgmlType t, int64_t n);

// Encodes n floats (n a multiple of the block size) into ggml_row_bytes(t, n) bytes at out.
// Scales are rounded to fp16 first and the codes chosen against the rounded scales, so the reconstruction
// error bounds hold for the decoded values (e.g. Q8_0: |x - y| <= d/2 with d the stored fp16 scale).
// Non-finite inputs give unspecified (but well-formed) blocks; callers check finiteness.
void ggml_quantize_row(GgmlType t, const float* x, int64_t n, uint8_t* out);
// Decodes ggml_row_bytes(t, n) bytes into n floats with ggml's formulas.
void ggml_dequantize_row(GgmlType t, const uint8_t* in, int64_t n, float* y);

}  // namespace quench
