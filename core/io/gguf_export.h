#pragma once
// A loaded Llama-family model -> one GGUF file that llama.cpp runs (architecture "llama"): hyperparameters,
// tokenizer, weights under llama.cpp's tensor names, q/k rows permuted from HF's rotate-half RoPE layout to
// GGUF's interleaved pairs, and a ggml type per tensor (see docs/gguf-export.md).
// Weights are the model's current ones (layers replaced by quantized versions are exported as replaced),
// converted one tensor at a time in row chunks straight into the file; nothing holds a converted model.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "quant/ggml_blocks.h"

namespace quench {

class LlamaModel;
class ProgressSink;
struct ModelConfig;

struct GgufExportOptions {
    GgmlType default_type = GgmlType::F16;         // every 2-D weight not named in tensor_types
    std::map<std::string, GgmlType> tensor_types;  // GGUF tensor name ("blk.0.ffn_down.weight") -> type
    std::string name;                              // general.name; empty: the model directory's name
    uint32_t alignment = 32;
    // false: quantize on the calling thread only (LibTorch's OpenMP pool cannot run in a forked child).
    bool use_threads = true;
    // An existing file at the path is refused (naming it) unless this is set; the file is written under a
    // temporary name and renamed into place either way, so a failed export never leaves half a file.
    bool replace = false;
};

struct GgufTensorRecord {
    std::string name;
    std::vector<int64_t> ne;  // ggml order
    GgmlType requested;
    GgmlType type;
    uint64_t bytes;
};

struct GgufFallback {
    std::string tensor;
    GgmlType requested;
    GgmlType used;
    std::string reason;  // "row length 100 is not a multiple of 256"
};

struct GgufExportReport {
    std::vector<GgufTensorRecord> tensors;  // file order
    std::vector<GgufFallback> fallbacks;
    std::vector<std::string> notes;  // tokenizer details that could not be carried over exactly, omitted output
    uint32_t file_type = 0;          // general.file_type
    std::string tokenizer_model;     // "llama" or "gpt2"
    uint64_t file_bytes = 0;
};

// Writes path atomically. Throws quench::Error (naming the model directory or the path, and the tensor or
// key) or quench::Cancelled; on any failure nothing appears under path.
GgufExportReport export_gguf(const LlamaModel& model, const std::string& path, const GgufExportOptions& options = {},
                             ProgressSink* progress = nullptr);

// ---- pieces, public for the CLI and the tests ------------------------------------------------------------

// llama.cpp's tensor name for an HF one ("model.layers.3.mlp.down_proj.weight" -> "blk.3.ffn_down.weight");
// empty when the tensor has no GGUF counterpart.
std::string gguf_tensor_name(const std::string& hf_name);

// GGUF row g of a q or k projection comes from HF row perm[g]. Within each head of size D, HF's rotate-half
// RoPE pairs dims (i, i + D/2) and GGUF's llama RoPE pairs (2i, 2i + 1), both with frequency theta_i, so
// GGUF row 2i is HF row i and GGUF row 2i + 1 is HF row i + D/2. n_heads: attention heads for q, KV heads for k.
std::vector<int64_t> gguf_rope_permutation(int64_t rows, int64_t n_heads);

// The type a tensor with rows of `cols` elements gets when `requested` does not fit: K-quants need
// cols % 256 == 0 and fall back as llama.cpp does (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0), legacy quants need cols % 32 == 0 and fall back to Q8_0, then F16. reason is set when the
// result differs from requested.
GgmlType gguf_fitting_type(GgmlType requested, int64_t cols, std::string* reason = nullptr);

// The GGUF type nearest in bits per weight (ties to the wider) among Q2_K 2.625, Q3_K 3.4375, Q4_K 4.5,
// Q5_K 5.5, Q6_K 6.5625, Q8_0 8.5, F16 16 and F32 32.
GgmlType gguf_type_for_bits(double bits_per_weight);
// The type for a [rows, cols] weight stored with a Quench codec spec ("rtn:b=4,g=128"): its codec row's
// gguf_type, else gguf_type_for_bits of the setting's own bits per weight (shared parts left out).
// quench::Error when the codec's row does not allow a GGUF export.
GgmlType gguf_type_for_codec(const std::string& codec_spec, int64_t rows, int64_t cols);

// Every type an export writes, by bits per weight (Q2_K first, F32 last): the GUI's type list and the CLI's
// --type / --tensor-type take these.
const std::vector<GgmlType>& gguf_export_types();
// Their names as the CLI takes them, in that order: "q2_k, q3_k, q4_0, ..., f16, f32".
std::string gguf_export_type_names();
// name ("q4_k" or "Q4_K") -> type; quench::Error "<where>: unknown GGUF type 'name' (q2_k, ...)" otherwise.
GgmlType parse_gguf_type(const std::string& name, const std::string& where);

// llama.cpp's llama_ftype for a file whose weights are mostly of type t (K-quants map to their _S variant).
uint32_t gguf_file_type(GgmlType t);

// Per-frequency divisors llama.cpp applies for Llama 3 RoPE scaling (the rope_freqs.weight tensor):
// unscaled inverse frequency / scaled inverse frequency, head_dim / 2 values.
std::vector<float> gguf_llama3_rope_factors(const ModelConfig& config);

}  // namespace quench
