#include "io/gguf_export.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>

#include "common/error.h"
#include "io/gguf_tokenizer.h"
#include "io/gguf_writer.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "model/rope.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"

namespace quench {

namespace {

constexpr std::size_t kChunkBytes = 4u << 20;  // bytes of converted rows handed to the file at a time

struct BlockName {
    const char* hf;
    const char* gguf;
};
constexpr BlockName kBlockNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},   {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},     {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},      {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
};

// One tensor of the file: where its fp32 data comes from (fetched only while it is written) and how it is
// converted.
struct Item {
    std::string name;     // GGUF
    std::string source;   // HF, for error messages
    int64_t rows = 1, cols = 0;
    bool is_1d = false;
    GgmlType requested = GgmlType::F32;
    GgmlType type = GgmlType::F32;
    int64_t rope_heads = 0;  // > 0: q/k rows permuted with this many heads
    std::function<at::Tensor()> fetch;
};

std::string model_name(const LlamaModel& model) {
    std::filesystem::path dir = std::filesystem::path(model.dir()).lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();
    const std::string name = dir.filename().string();
    return name.empty() || name == "." ? "model" : name;
}

void convert_rows(const Item& it, const float* src, const std::vector<int64_t>& perm, bool threads,
                  const std::string& dir, ProgressSink& progress, const GgufWriter::ChunkSink& sink) {
    const std::size_t row_bytes = ggml_row_bytes(it.type, it.cols);
    const int64_t chunk_rows = std::max<int64_t>(1, std::min<int64_t>(it.rows, int64_t(kChunkBytes / row_bytes)));
    std::vector<uint8_t> buf(std::size_t(chunk_rows) * row_bytes);
    for (int64_t r0 = 0; r0 < it.rows; r0 += chunk_rows) {
        progress.check();
        const int64_t r1 = std::min(it.rows, r0 + chunk_rows);
        auto body = [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; ++r) {
                const float* x = src + (perm.empty() ? r : perm[std::size_t(r)]) * it.cols;
                for (int64_t c = 0; c < it.cols; ++c)
                    if (!std::isfinite(x[c]))
                        throw Error(dir + ": tensor '" + it.source + "': non-finite value at row " +
                                    std::to_string(perm.empty() ? r : perm[std::size_t(r)]) + ", column " +
                                    std::to_string(c));
                ggml_quantize_row(it.type, x, it.cols, buf.data() + std::size_t(r - r0) * row_bytes);
            }
        };
        if (threads)
            at::parallel_for(r0, r1, 4, body);
        else
            body(r0, r1);
        sink(buf.data(), std::size_t(r1 - r0) * row_bytes);
    }
}

}  // namespace

std::string gguf_tensor_name(const std::string& hf) {
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    const std::string prefix = "model.layers.";
    if (hf.compare(0, prefix.size(), prefix) != 0) return "";
    std::size_t i = prefix.size();
    while (i < hf.size() && std::isdigit(static_cast<unsigned char>(hf[i]))) ++i;
    if (i == prefix.size() || i >= hf.size() || hf[i] != '.') return "";
    const std::string block = hf.substr(prefix.size(), i - prefix.size()), rest = hf.substr(i + 1);
    for (const BlockName& b : kBlockNames)
        if (rest == b.hf) return "blk." + block + "." + b.gguf;
    return "";
}

std::vector<int64_t> gguf_rope_permutation(int64_t rows, int64_t n_heads) {
    if (n_heads <= 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
        throw Error("RoPE permutation: " + std::to_string(rows) + " rows do not split into " + std::to_string(n_heads) +
                    " heads of even size");
    const int64_t D = rows / n_heads, half = D / 2;
    std::vector<int64_t> perm(static_cast<std::size_t>(rows));
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
            perm[std::size_t(h * D + 2 * i)] = h * D + i;
            perm[std::size_t(h * D + 2 * i + 1)] = h * D + half + i;
        }
    return perm;
}

GgmlType gguf_fitting_type(GgmlType requested, int64_t cols, std::string* reason) {
    auto fits = [cols](GgmlType t) { return cols > 0 && cols % ggml_type_info(t).block_elems == 0; };
    if (fits(requested)) return requested;
    GgmlType substitute = GgmlType::Q8_0;
    switch (requested) {
        case GgmlType::Q2_K: case GgmlType::Q3_K: substitute = GgmlType::Q4_0; break;
        case GgmlType::Q4_K: substitute = GgmlType::Q5_0; break;
        case GgmlType::Q5_K: substitute = GgmlType::Q5_1; break;
        default: break;
    }
    GgmlType used = fits(substitute) ? substitute : fits(GgmlType::Q8_0) ? GgmlType::Q8_0 : GgmlType::F16;
    if (reason)
        *reason = "row length " + std::to_string(cols) + " is not a multiple of " +
                  std::to_string(ggml_type_info(requested).block_elems);
    return used;
}

GgmlType gguf_type_for_bits(double bits) {
    static const GgmlType kLadder[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                       GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16,  GgmlType::F32};
    GgmlType best = kLadder[0];
    double best_gap = 1e300;
    for (GgmlType t : kLadder) {
        const double gap = std::fabs(ggml_type_info(t).bits_per_weight() - bits);
        if (gap <= best_gap) {  // <=: a tie goes to the wider type, later in the ladder
            best_gap = gap;
            best = t;
        }
    }
    return best;
}

GgmlType gguf_type_for_codec(const std::string& codec_spec, int64_t rows, int64_t cols) {
    const CodecSpec spec = CodecSpec::parse(codec_spec);
    check_exportable(spec, ExportFormat::Gguf, "GGUF export");
    const CodecTraits* row = find_codec(spec.codec());
    if (row->gguf_type) return row->gguf_type(spec, rows, cols);
    // The layer's own bits: a part shared by every layer (a lift matrix) is stored once, not in each tensor.
    const BitsEstimate e = make_codec(spec)->estimate_bits(rows, cols);
    return gguf_type_for_bits(e.total_bits_per_weight - double(e.shared_bits) / (double(rows) * double(cols)));
}

const std::vector<GgmlType>& gguf_export_types() {
    static const std::vector<GgmlType> types = [] {
        std::vector<GgmlType> out;
        for (const auto& info : ggml_types()) out.push_back(info.type);
        std::stable_sort(out.begin(), out.end(), [](GgmlType a, GgmlType b) {
            return ggml_type_info(a).bits_per_weight() < ggml_type_info(b).bits_per_weight();
        });
        return out;
    }();
    return types;
}

std::string gguf_export_type_names() {
    std::string out;
    for (GgmlType t : gguf_export_types()) {
        std::string name = ggml_type_name(t);
        for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        out += (out.empty() ? "" : ", ") + name;
    }
    return out;
}

GgmlType parse_gguf_type(const std::string& name, const std::string& where) {
    const auto t = ggml_type_from_name(name);
    if (!t || std::find(gguf_export_types().begin(), gguf_export_types().end(), *t) == gguf_export_types().end())
        throw Error(where + ": unknown GGUF type '" + name + "' (" + gguf_export_type_names() + ")");
    return *t;
}

uint32_t gguf_file_type(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return 0;
        case GgmlType::F16: return 1;
        case GgmlType::Q4_0: return 2;
        case GgmlType::Q4_1: return 3;
        case GgmlType::Q8_0: return 7;
        case GgmlType::Q5_0: return 8;
        case GgmlType::Q5_1: return 9;
        case GgmlType::Q2_K: return 10;
        case GgmlType::Q3_K: return 11;  // Q3_K_S
        case GgmlType::Q4_K: return 14;  // Q4_K_S
        case GgmlType::Q5_K: return 16;  // Q5_K_S
        case GgmlType::Q6_K: return 18;
    }
    return 0;
}

std::vector<float> gguf_llama3_rope_factors(const ModelConfig& config) {
    ModelConfig plain = config;
    plain.rope_scaling = RopeScaling::None;
    const at::Tensor ratio = (rope_inv_freq(plain) / rope_inv_freq(config)).contiguous();
    return std::vector<float>(ratio.data_ptr<float>(), ratio.data_ptr<float>() + ratio.numel());
}

namespace {

// The file's tensors in llama.cpp's usual order; output.weight only when it is not the tied embedding.
std::vector<Item> plan_tensors(const LlamaModel& model, std::vector<std::string>& notes) {
    const ModelConfig& c = model.config();
    const Checkpoint& ckpt = model.checkpoint();
    std::vector<Item> items;
    auto add_checkpoint = [&](const std::string& hf, int64_t rows, int64_t cols, bool is_1d) {
        Item it;
        it.source = hf;
        it.name = gguf_tensor_name(hf);
        it.rows = rows;
        it.cols = cols;
        it.is_1d = is_1d;
        it.fetch = [&ckpt, hf] { return ckpt.tensor_f32(hf); };
        items.push_back(std::move(it));
    };
    // Linear layers come from the model, so layers replaced by a codec are exported as replaced.
    auto add_layer = [&](std::size_t layer) {
        const LayerInfo& info = model.layers().at(layer);
        Item it;
        it.source = info.weight_name();
        it.name = gguf_tensor_name(it.source);
        it.rows = info.out_features;
        it.cols = info.in_features;
        it.rope_heads = info.kind == LayerKind::Q ? c.num_attention_heads
                        : info.kind == LayerKind::K ? c.num_key_value_heads : 0;
        it.fetch = [&model, layer] { return model.weight(layer); };
        items.push_back(std::move(it));
    };
    auto is_mlp = [](LayerKind k) { return k == LayerKind::Gate || k == LayerKind::Up || k == LayerKind::Down; };

    add_checkpoint("model.embed_tokens.weight", c.vocab_size, c.hidden_size, false);
    const std::vector<LayerInfo>& layers = model.layers().all();
    for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
        const std::string prefix = "model.layers." + std::to_string(b) + ".";
        add_checkpoint(prefix + "input_layernorm.weight", 1, c.hidden_size, true);
        for (std::size_t i = 0; i < layers.size(); ++i)
            if (layers[i].block == b && !is_mlp(layers[i].kind)) add_layer(i);
        add_checkpoint(prefix + "post_attention_layernorm.weight", 1, c.hidden_size, true);
        for (std::size_t i = 0; i < layers.size(); ++i)
            if (layers[i].block == b && is_mlp(layers[i].kind)) add_layer(i);
    }
    add_checkpoint("model.norm.weight", 1, c.hidden_size, true);
    const auto head = model.layers().select_kind(LayerKind::LmHead);
    if (head.size() != 1) throw Error(model.dir() + ": expected one lm_head layer, found " + std::to_string(head.size()));
    // llama.cpp reuses token_embd for the output when output.weight is absent, which is right only while
    // the head is still the tied embedding.
    if (!c.tie_word_embeddings || model.is_replaced(head[0]))
        add_layer(head[0]);
    else
        notes.push_back("output.weight omitted: tied to token_embd.weight");
    return items;
}

// Sets each item's requested and actual type, records fallbacks, and returns the dominant matrix type.
GgmlType assign_types(std::vector<Item>& items, const GgufExportOptions& options, const std::string& dir,
                      std::vector<GgufFallback>& fallbacks) {
    for (const auto& entry : options.tensor_types) {
        const bool known = std::any_of(items.begin(), items.end(), [&](const Item& it) { return it.name == entry.first; });
        if (!known) throw Error(dir + ": GGUF tensor_types: '" + entry.first + "' is not a tensor of this export");
    }
    std::map<GgmlType, int64_t> elems_by_type;
    for (Item& it : items) {
        auto m = options.tensor_types.find(it.name);
        it.requested = m != options.tensor_types.end() ? m->second : it.is_1d ? GgmlType::F32 : options.default_type;
        std::string reason;
        if (it.is_1d) {  // llama.cpp reads norms as F32
            it.type = GgmlType::F32;
            if (it.requested != GgmlType::F32) reason = "1-D tensors (norms) stay F32";
        } else {
            it.type = gguf_fitting_type(it.requested, it.cols, &reason);
            elems_by_type[it.type] += it.rows * it.cols;
        }
        if (it.type != it.requested) fallbacks.push_back({it.name, it.requested, it.type, reason});
    }
    GgmlType dominant = GgmlType::F32;
    int64_t most = -1;
    for (const auto& [t, n] : elems_by_type)
        if (n > most) {
            most = n;
            dominant = t;
        }
    return dominant;
}

void add_llama_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, uint32_t file_type) {
    auto u32 = [](int64_t v) { return GgufValue::u32(uint32_t(v)); };
    w.set("general.architecture", GgufValue::string("llama"));
    w.set("general.name", GgufValue::string(name));
    w.set("general.file_type", GgufValue::u32(file_type));
    w.set("general.quantization_version", GgufValue::u32(2));  // ggml's current block layouts
    w.set("llama.context_length", u32(c.max_position_embeddings));
    w.set("llama.embedding_length", u32(c.hidden_size));
    w.set("llama.block_count", u32(c.num_hidden_layers));
    w.set("llama.feed_forward_length", u32(c.intermediate_size));
    w.set("llama.attention.head_count", u32(c.num_attention_heads));
    w.set("llama.attention.head_count_kv", u32(c.num_key_value_heads));
    w.set("llama.rope.dimension_count", u32(c.head_dim));
    w.set("llama.rope.freq_base", GgufValue::f32(float(c.rope_theta)));
    w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(float(c.rms_norm_eps)));
    w.set("llama.vocab_size", u32(c.vocab_size));
    if (c.head_dim * c.num_attention_heads != c.hidden_size) {  // llama.cpp assumes hidden / heads otherwise
        w.set("llama.attention.key_length", u32(c.head_dim));
        w.set("llama.attention.value_length", u32(c.head_dim));
    }
    if (c.rope_scaling == RopeScaling::Linear) {
        w.set("llama.rope.scaling.type", GgufValue::string("linear"));
        w.set("llama.rope.scaling.factor", GgufValue::f32(float(c.rope_factor)));
    }
}

}  // namespace

GgufExportReport export_gguf(const LlamaModel& model, const std::string& path, const GgufExportOptions& options,
                             ProgressSink* progress) {
    ProgressSink& p = progress ? *progress : null_progress();
    const ModelConfig& c = model.config();
    const std::string dir = model.dir();
    if (!options.replace && std::filesystem::exists(path))
        throw Error(path + ": already exists; choose another file, or replace it (--replace, or Replace in the dialog)");
    if (std::filesystem::is_directory(path)) throw Error(path + ": is a directory; a GGUF export is one file");
    if (c.attention_bias)
        throw Error(dir + "/config.json: " + c.architecture +
                    " has q/k/v biases; GGUF export covers the llama architecture only (no biases)");
    p.report(0.0, "reading tokenizer");
    GgufVocab vocab = gguf_vocab_from_model_dir(dir);
    pad_gguf_vocab(vocab, c.vocab_size, dir);
    p.check();

    GgufExportReport report;
    std::vector<Item> items = plan_tensors(model, report.notes);
    report.file_type = gguf_file_type(assign_types(items, options, dir, report.fallbacks));
    report.tokenizer_model = vocab.model;
    report.notes.insert(report.notes.end(), vocab.notes.begin(), vocab.notes.end());

    GgufWriter w(options.alignment);
    add_llama_metadata(w, c, options.name.empty() ? model_name(model) : options.name, report.file_type);
    add_gguf_vocab(w, vocab);
    if (c.rope_scaling == RopeScaling::Llama3) {
        auto factors = std::make_shared<std::vector<float>>(gguf_llama3_rope_factors(c));
        const int64_t n = int64_t(factors->size());
        w.add_tensor("rope_freqs.weight", {n}, GgmlType::F32, [factors, n](const GgufWriter::ChunkSink& sink) {
            std::vector<uint8_t> bytes(ggml_row_bytes(GgmlType::F32, n));
            ggml_quantize_row(GgmlType::F32, factors->data(), n, bytes.data());
            sink(bytes.data(), bytes.size());
        });
        report.tensors.push_back({"rope_freqs.weight", {n}, GgmlType::F32, GgmlType::F32, uint64_t(4 * n)});
    }
    const bool threads = options.use_threads;
    for (const Item& it : items) {
        std::vector<int64_t> ne = it.is_1d ? std::vector<int64_t>{it.cols} : std::vector<int64_t>{it.cols, it.rows};
        report.tensors.push_back({it.name, ne, it.requested, it.type, ggml_row_bytes(it.type, it.cols) * uint64_t(it.rows)});
        // The producer runs during write(): only then is the tensor fetched (a view of the mapping for F32
        // checkpoints, one converted tensor otherwise) and converted chunk by chunk into the file.
        w.add_tensor(it.name, ne, it.type, [&it, &p, &dir, threads](const GgufWriter::ChunkSink& sink) {
            const at::Tensor t = it.fetch().contiguous();
            if (t.scalar_type() != at::kFloat || t.numel() != it.rows * it.cols)
                throw Error(dir + ": tensor '" + it.source + "': expected " + std::to_string(it.rows * it.cols) +
                            " fp32 values, found " + std::to_string(t.numel()));
            const std::vector<int64_t> perm = it.rope_heads > 0 ? gguf_rope_permutation(it.rows, it.rope_heads)
                                                                : std::vector<int64_t>{};
            convert_rows(it, t.data_ptr<float>(), perm, threads, dir, p, sink);
        });
    }
    w.write(path, &p);
    report.file_bytes = std::filesystem::file_size(path);
    return report;
}

}  // namespace quench
