#include "model/synthetic.h"

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/safetensors_writer.h"
#include "common/progress.h"
#include "model/hf_pipeline.h"
#include "model/utf8.h"

namespace quench {
namespace {

struct Shape {
    const char* name;
    const char* arch;
    int64_t hidden, inter, layers, heads, kv_heads, vocab, max_pos;
    double rope_theta;
    bool tied;
};

// Published configs of the real models these shapes stand for.
constexpr Shape kShapes[] = {
    {"smollm2-135m", "LlamaForCausalLM", 576, 1536, 30, 9, 3, 49152, 8192, 100000.0, true},
    {"smollm2-360m", "LlamaForCausalLM", 960, 2560, 32, 15, 5, 49152, 8192, 100000.0, true},
    {"llama2-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0, false},
    {"qwen2.5-0.5b", "Qwen2ForCausalLM", 896, 4864, 24, 14, 2, 151936, 32768, 1000000.0, true},
    {"tinyllama-1.1b", "LlamaForCausalLM", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0, false},
    // Llama 3's rope_scaling (rope_type llama3) is left out: the weights are synthetic, the shapes are real.
    {"llama3.2-1b", "LlamaForCausalLM", 2048, 8192, 16, 32, 8, 128256, 131072, 500000.0, true},
    {"llama3-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0, false},
    // Gemma-2-2B's widths (hidden 2304, MLP 9216, vocabulary 256000) in a Llama block: Gemma's own block (head
    // size 256, soft-capping, extra norms) is not a supported architecture, its layer shapes are what codecs see.
    {"gemma2-2b", "LlamaForCausalLM", 2304, 9216, 26, 8, 4, 256000, 8192, 10000.0, true},
    {"tinystories-656k", "LlamaForCausalLM", 128, 384, 2, 8, 4, 2048, 512, 10000.0, true},
};

const Shape& find_shape(const std::string& name) {
    for (const auto& s : kShapes)
        if (name == s.name) return s;
    std::string known;
    for (const auto& s : kShapes) known += std::string(known.empty() ? "" : ", ") + s.name;
    throw Error("unknown synthetic shape '" + name + "' (known: " + known + ")");
}

// Trained weights are heavier-tailed than Gaussian and have a few large input channels (the outliers that
// make per-channel scaling and incoherence matter). A log-normal scale mixture gives the tails.
at::Tensor trained_like(int64_t out, int64_t in, double std, torch::Generator& gen) {
    auto w = torch::randn({out, in}, gen) * torch::exp(0.35 * torch::randn({out, in}, gen));
    w = w * (std / w.std().item<double>());
    const int64_t n_outliers = std::max<int64_t>(1, in / 200);
    auto cols = torch::randperm(in, gen).narrow(0, 0, n_outliers);
    auto boost = 4.0 + 8.0 * torch::rand({n_outliers}, gen);
    w.index_copy_(1, cols, w.index_select(1, cols) * boost);
    return w;
}

std::string tokenizer_json() {
    // Byte-level BPE with the 256 byte symbols and no merges: a valid HF tokenizer for any text.
    nlohmann::json v = nlohmann::json::object();
    for (int b = 0; b < 256; ++b) {
        std::string symbol;
        utf8::append(symbol, hf::byte_to_char(static_cast<unsigned char>(b)));
        v[symbol] = b;
    }
    const int64_t special = 256;
    v["<|endoftext|>"] = special;
    nlohmann::json t;
    t["version"] = "1.0";
    t["added_tokens"] = {{{"id", special}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", true}}};
    t["normalizer"] = nullptr;
    t["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    t["post_processor"] = nullptr;
    t["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    t["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
                  {"byte_fallback", false}, {"vocab", v}, {"merges", nlohmann::json::array()}};
    return t.dump();
}

}  // namespace

std::vector<std::string> synthetic_shapes() {
    std::vector<std::string> out;
    for (const auto& s : kShapes) out.emplace_back(s.name);
    return out;
}

ModelConfig synthetic_config(const std::string& name) {
    const Shape& s = find_shape(name);
    ModelConfig c;
    c.architecture = s.arch;
    c.model_type = std::string(s.arch) == "Qwen2ForCausalLM" ? "qwen2" : "llama";
    c.hidden_size = s.hidden;
    c.intermediate_size = s.inter;
    c.num_hidden_layers = s.layers;
    c.num_attention_heads = s.heads;
    c.num_key_value_heads = s.kv_heads;
    c.head_dim = s.hidden / s.heads;
    c.vocab_size = s.vocab;
    c.max_position_embeddings = s.max_pos;
    c.rope_theta = s.rope_theta;
    c.rms_norm_eps = 1e-5;
    c.tie_word_embeddings = s.tied;
    c.attention_bias = c.architecture == "Qwen2ForCausalLM";
    c.bos_token_id = 256;
    c.eos_token_id = 256;
    return c;
}

void write_synthetic_checkpoint(const std::string& out_dir, const SynthOptions& o, ProgressSink* progress) {
    ProgressSink& prog = progress ? *progress : null_progress();
    ModelConfig c = synthetic_config(o.shape);
    if (o.layers < 0) throw Error("synthetic checkpoint: --layers must be >= 0");
    if (o.layers > 0) c.num_hidden_layers = o.layers;
    if (o.dtype != DType::F32 && o.dtype != DType::F16 && o.dtype != DType::BF16)
        throw Error("synthetic checkpoint: dtype must be F32, F16 or BF16");
    c.torch_dtype = o.dtype == DType::F32 ? "float32" : o.dtype == DType::F16 ? "float16" : "bfloat16";
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw Error(out_dir + ": cannot create directory: " + ec.message());

    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    const auto st = o.dtype == DType::F32 ? torch::kFloat32 : o.dtype == DType::F16 ? torch::kFloat16 : torch::kBFloat16;

    // Every tensor, in checkpoint order, with how it is drawn. They are generated in this order when their
    // file is written, one at a time, so a 7B checkpoint is written holding one tensor, never the model.
    enum class Draw { Embed, Norm, Linear, Bias };
    struct Planned {
        std::string name;
        std::vector<int64_t> shape;
        Draw draw;
    };
    std::vector<Planned> plan;
    const int64_t h = c.hidden_size, qd = c.num_attention_heads * c.head_dim, kvd = c.kv_dim();
    plan.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, Draw::Embed});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        plan.push_back({p + "input_layernorm.weight", {h}, Draw::Norm});
        plan.push_back({p + "self_attn.q_proj.weight", {qd, h}, Draw::Linear});
        plan.push_back({p + "self_attn.k_proj.weight", {kvd, h}, Draw::Linear});
        plan.push_back({p + "self_attn.v_proj.weight", {kvd, h}, Draw::Linear});
        if (c.attention_bias) {
            plan.push_back({p + "self_attn.q_proj.bias", {qd}, Draw::Bias});
            plan.push_back({p + "self_attn.k_proj.bias", {kvd}, Draw::Bias});
            plan.push_back({p + "self_attn.v_proj.bias", {kvd}, Draw::Bias});
        }
        plan.push_back({p + "self_attn.o_proj.weight", {h, qd}, Draw::Linear});
        plan.push_back({p + "post_attention_layernorm.weight", {h}, Draw::Norm});
        plan.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, h}, Draw::Linear});
        plan.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, h}, Draw::Linear});
        plan.push_back({p + "mlp.down_proj.weight", {h, c.intermediate_size}, Draw::Linear});
    }
    plan.push_back({"model.norm.weight", {h}, Draw::Norm});
    if (!c.tie_word_embeddings) plan.push_back({"lm_head.weight", {c.vocab_size, h}, Draw::Embed});

    const double std = 0.02;
    auto draw = [&](const Planned& t) {
        at::Tensor x;
        switch (t.draw) {
            case Draw::Embed:  // (an embedding is written in slices of this same draw, below)
            case Draw::Bias: x = torch::randn(t.shape, gen) * std; break;
            case Draw::Norm: x = 1.0 + 0.1 * torch::randn(t.shape, gen); break;
            case Draw::Linear: x = trained_like(t.shape[0], t.shape[1], std, gen); break;
        }
        return x.to(st).contiguous();
    };

    // Shards: consecutive tensors until one reaches shard_bytes (the last shard takes the rest).
    std::vector<std::pair<std::size_t, std::size_t>> shards;  // [begin, end) into plan
    {
        std::size_t begin = 0;
        int64_t bytes = 0;
        for (std::size_t i = 0; i < plan.size(); ++i) {
            int64_t n = dtype_size(o.dtype);
            for (int64_t d : plan[i].shape) n *= d;
            bytes += n;
            if ((o.shard_bytes > 0 && bytes >= o.shard_bytes) || i + 1 == plan.size()) {
                shards.emplace_back(begin, i + 1);
                begin = i + 1;
                bytes = 0;
            }
        }
    }
    nlohmann::json weight_map = nlohmann::json::object();
    for (std::size_t s = 0; s < shards.size(); ++s) {
        const auto [begin, end] = shards[s];
        const std::string file = o.shard_bytes > 0 ? "model-" + std::to_string(s + 1) + ".safetensors"
                                                   : "model.safetensors";
        SafetensorsStream w;
        w.set_metadata("format", "pt");
        for (std::size_t i = begin; i < end; ++i) {
            // One dtype throughout, so the stream keeps this order and the draws happen in it.
            w.add(plan[i].name, o.dtype, plan[i].shape, [&, i](const SafetensorsStream::ByteSink& sink) {
                const Planned& t = plan[i];
                if (t.draw == Draw::Embed) {
                    // An embedding is the largest tensor (128256 x 4096 for Llama 3: 2.1 GB in fp32), so it is
                    // drawn in slices of rows. randn fills 16 values at a time from the generator's sequence,
                    // so slices of whole rows of a width divisible by 16 give the very values of one draw.
                    const int64_t rows = t.shape[0], width = t.shape[1];
                    const int64_t step = width % 16 == 0 ? std::max<int64_t>(1, (int64_t(16) << 20) / width) : rows;
                    for (int64_t r = 0; r < rows; r += step) {
                        const at::Tensor x = (torch::randn({std::min(step, rows - r), width}, gen) * std).to(st);
                        sink(x.data_ptr(), static_cast<std::size_t>(x.nbytes()));
                    }
                    return;
                }
                const at::Tensor x = draw(t);
                sink(x.data_ptr(), static_cast<std::size_t>(x.nbytes()));
            });
            weight_map[plan[i].name] = file;
        }
        SubProgress sub(prog, 0.99 * begin / plan.size(), 0.99 * end / plan.size());
        w.write(out_dir + "/" + file, &sub);
    }

    if (o.shard_bytes > 0) {
        nlohmann::json index;
        index["metadata"] = nlohmann::json::object();
        index["weight_map"] = weight_map;
        write_file_atomic(out_dir + "/model.safetensors.index.json", index.dump(2));
    }
    write_file_atomic(out_dir + "/config.json", c.to_json_text());
    write_file_atomic(out_dir + "/tokenizer.json", tokenizer_json());
    nlohmann::json tc = {{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"add_bos_token", false}};
    write_file_atomic(out_dir + "/tokenizer_config.json", tc.dump(2));
    prog.report(1.0, "done");
}

}  // namespace quench
