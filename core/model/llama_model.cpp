#include "model/llama_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "common/error.h"
#include "common/progress.h"
#include "model/rope.h"

namespace quench {

struct LlamaModel::Block {
    at::Tensor input_norm, post_norm;
    at::Tensor q_bias, k_bias, v_bias;  // undefined unless config.attention_bias
    std::size_t q, k, v, o, gate, up, down;  // registry indices
    int64_t window = 0;                      // sliding attention window (0: full causal attention)
    std::vector<std::string> stored;         // the checkpoint tensors this block reads (forgotten after it)
};

struct LlamaModel::Pass {
    Weights which;
    const LinearInputHook* hook;
    at::Tensor cos, sin;
    const LinearOverride* override = nullptr;
};

namespace {

std::string shape_str(at::IntArrayRef s) {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

at::Tensor as_f32(const at::Tensor& t) { return t.scalar_type() == at::kFloat ? t : t.to(at::kFloat); }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
    auto var = x.pow(2).mean(-1, /*keepdim=*/true);
    return as_f32(w) * (x * torch::rsqrt(var + eps));
}

// Causal softmax attention over q [B, H, T, D] and k, v [B, H, T, D], in chunks of query rows whose score
// matrix stays under `budget` bytes: rows s..e-1 see keys 0..e-1, the keys after them being masked anyway. A
// window whose whole matrix fits is one chunk, computed exactly as without chunking. With a sliding window
// W < T, query i also loses keys j <= i - W.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t budget,
                            int64_t window) {
    const int64_t T = q.size(2), D = q.size(3);
    const int64_t row_bytes = q.size(0) * q.size(1) * T * int64_t(sizeof(float));
    const int64_t rows = row_bytes * T <= budget ? T : std::max<int64_t>(16, budget / row_bytes);
    const double norm = std::sqrt(static_cast<double>(D));
    std::vector<at::Tensor> parts;
    for (int64_t s = 0; s < T; s += rows) {
        const int64_t e = std::min(T, s + rows);
        const at::Tensor kc = e == T ? k : k.narrow(2, 0, e), vc = e == T ? v : v.narrow(2, 0, e);
        const at::Tensor qc = rows == T ? q : q.narrow(2, s, e - s);
        auto scores = torch::matmul(qc, kc.transpose(-2, -1)) / norm;
        auto mask = torch::ones({e - s, e}, torch::kBool).triu(s + 1);
        if (window > 0 && window < T) mask = mask.logical_or(torch::ones({e - s, e}, torch::kBool).tril(s - window));
        scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
        parts.push_back(torch::matmul(torch::softmax(scores, -1), vc));
    }
    return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

}  // namespace

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& dir, ProgressSink* progress) {
    ProgressSink& p = progress ? *progress : null_progress();
    p.report(0.0, "reading config");
    ModelConfig config = ModelConfig::from_file(dir + "/config.json");
    // A quantized checkpoint stores no plain tensor for its quantized weights: Quench's own packed format
    // is decoded by io/model_loading.h's load_model; any other method would only fail later with a
    // confusing missing tensor.
    const std::string method = checkpoint_quant_method(dir);
    if (method == "quench")
        throw Error(dir + "/config.json: a Quench packed checkpoint; open it with load_model (io/model_loading.h)");
    if (!method.empty())
        throw Error(dir + "/config.json: quantization_config.quant_method '" + method +
                    "' is not supported (Quench reads plain HF checkpoints and its own packed format, 'quench')");
    p.check();
    p.report(0.2, "mapping weights");
    Checkpoint ckpt = Checkpoint::open(dir, config.tie_word_embeddings);
    p.check();
    auto model = std::make_unique<LlamaModel>(std::move(config), std::move(ckpt));
    p.report(1.0, "loaded");
    return model;
}

LlamaModel::LlamaModel(ModelConfig config, Checkpoint checkpoint, GivenWeights given)
    : config_(std::move(config)), checkpoint_(std::move(checkpoint)) {
    const auto& c = config_;
    auto& decoded = given.dense;
    std::set<std::string> outside(given.external.begin(), given.external.end());
    std::vector<std::string>* stored = nullptr;  // the block being built records what it reads
    auto fetch = [&](const std::string& name, std::vector<int64_t> shape) {
        tensor_names_.push_back(name);
        at::Tensor t;
        if (auto it = decoded.find(name); it != decoded.end()) {
            t = it->second.to(torch::kFloat32).contiguous();
            decoded_names_.push_back(name);
            decoded.erase(it);
        } else {
            if (!checkpoint_.contains(name)) throw Error(checkpoint_.dir() + ": missing tensor '" + name + "'");
            t = checkpoint_.tensor(name);  // as stored: converted to fp32 per use, never up front
            if (stored) stored->push_back(name);
        }
        if (t.sizes() != at::IntArrayRef(shape))
            throw Error(checkpoint_.dir() + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) +
                        ", config.json implies " + shape_str(shape));
        return t;
    };
    std::vector<LayerInfo> infos;
    auto add_linear = [&](const std::string& name, int block, LayerKind kind, int64_t out, int64_t in) {
        original_deferred_.emplace_back();
        if (auto it = given.deferred.find(name + ".weight"); it != given.deferred.end()) {
            if (!it->second || it->second->rows() != out || it->second->cols() != in)
                throw Error(checkpoint_.dir() + ": tensor '" + it->first + "' has shape " +
                            (it->second ? shape_str({it->second->rows(), it->second->cols()}) : std::string("[]")) +
                            ", config.json implies " + shape_str({out, in}));
            tensor_names_.push_back(it->first);
            decoded_names_.push_back(it->first);
            // Stands in like an external weight; dense() asks the deferred one.
            weights_.push_back(torch::full({1}, std::numeric_limits<float>::quiet_NaN()).expand({out, in}));
            original_deferred_.back() = std::move(it->second);
            given.deferred.erase(it);
        } else if (outside.erase(name + ".weight")) {
            tensor_names_.push_back(name + ".weight");
            decoded_names_.push_back(name + ".weight");
            weights_.push_back(torch::full({1}, std::numeric_limits<float>::quiet_NaN()).expand({out, in}));
        } else {
            weights_.push_back(fetch(name + ".weight", {out, in}));
        }
        infos.push_back(LayerInfo{name, block, kind, out, in});
        return infos.size() - 1;
    };
    const int64_t h = c.hidden_size, qd = c.num_attention_heads * c.head_dim, kvd = c.kv_dim();
    embed_ = fetch("model.embed_tokens.weight", {c.vocab_size, h});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        const int bi = static_cast<int>(i);
        Block b;
        b.window = c.window_of(i);
        stored = &b.stored;
        b.input_norm = fetch(p + "input_layernorm.weight", {h});
        b.post_norm = fetch(p + "post_attention_layernorm.weight", {h});
        b.q = add_linear(p + "self_attn.q_proj", bi, LayerKind::Q, qd, h);
        b.k = add_linear(p + "self_attn.k_proj", bi, LayerKind::K, kvd, h);
        b.v = add_linear(p + "self_attn.v_proj", bi, LayerKind::V, kvd, h);
        b.o = add_linear(p + "self_attn.o_proj", bi, LayerKind::O, h, qd);
        b.gate = add_linear(p + "mlp.gate_proj", bi, LayerKind::Gate, c.intermediate_size, h);
        b.up = add_linear(p + "mlp.up_proj", bi, LayerKind::Up, c.intermediate_size, h);
        b.down = add_linear(p + "mlp.down_proj", bi, LayerKind::Down, h, c.intermediate_size);
        if (c.attention_bias) {
            b.q_bias = fetch(p + "self_attn.q_proj.bias", {qd});
            b.k_bias = fetch(p + "self_attn.k_proj.bias", {kvd});
            b.v_bias = fetch(p + "self_attn.v_proj.bias", {kvd});
        }
        stored = nullptr;
        blocks_.push_back(std::move(b));
    }
    final_norm_ = fetch("model.norm.weight", {h});
    add_linear("lm_head", -1, LayerKind::LmHead, c.vocab_size, h);
    if (!decoded.empty())
        throw Error(checkpoint_.dir() + ": decoded weight '" + decoded.begin()->first +
                    "' is not a weight this model reads");
    if (!outside.empty())
        throw Error(checkpoint_.dir() + ": external weight '" + *outside.begin() +
                    "' is not a linear layer's weight this model reads");
    if (!given.deferred.empty())
        throw Error(checkpoint_.dir() + ": quantized weight '" + given.deferred.begin()->first +
                    "' is not a linear layer's weight this model reads");
    registry_ = LayerRegistry(std::move(infos));
    originals_ = weights_;
    deferred_.resize(weights_.size());
    inv_freq_ = rope_inv_freq(c);
    streaming_ = num_params() * int64_t(sizeof(float)) > (int64_t(1) << 30);  // over 1 GiB as fp32
}

LlamaModel::~LlamaModel() = default;

int64_t LlamaModel::num_params() const {
    int64_t n = embed_.numel() + final_norm_.numel();
    for (const auto& b : blocks_) {
        n += b.input_norm.numel() + b.post_norm.numel();
        if (b.q_bias.defined()) n += b.q_bias.numel() + b.k_bias.numel() + b.v_bias.numel();
    }
    for (std::size_t i = 0; i < weights_.size(); ++i) {
        const bool tied_head = registry_.at(i).kind == LayerKind::LmHead && config_.tie_word_embeddings;
        if (!tied_head) n += originals_[i].numel();
    }
    return n;
}

at::Tensor LlamaModel::linear(std::size_t layer, const at::Tensor& x, const at::Tensor& bias,
                              const Pass& pass) const {
    if (pass.hook && *pass.hook) (*pass.hook)(layer, x.reshape({-1, x.size(-1)}));
    if (pass.override && *pass.override) {
        at::Tensor y = (*pass.override)(layer, x);
        if (y.defined()) return bias.defined() ? y + bias : y;
    }
    const at::Tensor w = dense(layer, pass.which);
    return bias.defined() ? torch::nn::functional::linear(x, w, bias) : torch::nn::functional::linear(x, w);
}

at::Tensor LlamaModel::attention(const Block& b, const at::Tensor& x, const Pass& pass) const {
    const auto& c = config_;
    const int64_t B = x.size(0), T = x.size(1), H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;
    auto q = linear(b.q, x, b.q_bias, pass).view({B, T, H, D}).transpose(1, 2);
    auto k = linear(b.k, x, b.k_bias, pass).view({B, T, KV, D}).transpose(1, 2);
    auto v = linear(b.v, x, b.v_bias, pass).view({B, T, KV, D}).transpose(1, 2);
    q = apply_rope(q, pass.cos, pass.sin);
    k = apply_rope(k, pass.cos, pass.sin);
    if (KV != H) {  // GQA: query head i reads K/V head i / (H / KV), as HF's repeat_kv does.
        k = k.repeat_interleave(H / KV, 1);
        v = v.repeat_interleave(H / KV, 1);
    }
    auto ctx = causal_attention(q, k, v, attention_budget_, b.window).transpose(1, 2).reshape({B, T, H * D});
    return linear(b.o, ctx, at::Tensor(), pass);
}

at::Tensor LlamaModel::mlp(const Block& b, const at::Tensor& x, const Pass& pass) const {
    auto gate = linear(b.gate, x, at::Tensor(), pass);
    auto up = linear(b.up, x, at::Tensor(), pass);
    return linear(b.down, torch::silu(gate) * up, at::Tensor(), pass);
}

at::Tensor LlamaModel::forward_hidden(const at::Tensor& tokens, const LinearInputHook* hook, Weights which,
                                     const LinearOverride* override) const {
    if (tokens.dim() != 2) throw Error("forward: tokens must be [batch, seq]");
    torch::NoGradGuard no_grad;
    const int64_t T = tokens.size(1);
    if (tokens.numel() > 0 && (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= config_.vocab_size))
        throw Error("forward: token id out of range [0, " + std::to_string(config_.vocab_size) + ")");
    auto [cos, sin] = rope_tables(config_, inv_freq_, T);
    const Pass pass{which, hook, cos, sin, override};
    auto x = as_f32(embed_.index_select(0, tokens.reshape({-1}).to(torch::kLong))).view({tokens.size(0), T, -1});
    for (const auto& b : blocks_) x = run_block(b, x, pass);
    auto out = rms_norm(x, final_norm_, config_.rms_norm_eps);
    // lm_head's input is the normed hidden state; report it so lm_head can be captured like any layer.
    if (hook && *hook) (*hook)(registry_.size() - 1, out.reshape({-1, out.size(-1)}));
    return out;
}

at::Tensor LlamaModel::logits(const at::Tensor& hidden, Weights which, const LinearOverride* override) const {
    torch::NoGradGuard no_grad;
    if (override && *override) {
        at::Tensor y = (*override)(registry_.size() - 1, hidden);
        if (y.defined()) return y;
    }
    return head(hidden, which);
}

at::Tensor LlamaModel::head(const at::Tensor& normed, Weights which) const {
    const std::size_t l = registry_.size() - 1;
    const at::Tensor& w = which == Weights::Original ? originals_[l] : weights_[l];
    const bool as_stored = which == Weights::Original || (!deferred_[l] && w.is_same(originals_[l]));
    if (as_stored && !original_deferred_[l] && w.scalar_type() != at::kFloat) {
        // A 16-bit head becomes fp32 a slice of the vocabulary at a time: Llama 3's 128256 x 4096 head is
        // 2.1 GB as fp32, a slice of 8192 rows 134 MB.
        constexpr int64_t kRows = 8192;
        std::vector<at::Tensor> parts;
        for (int64_t r = 0; r < w.size(0); r += kRows)
            parts.push_back(
                torch::nn::functional::linear(normed, w.narrow(0, r, std::min(kRows, w.size(0) - r)).to(at::kFloat)));
        return parts.size() == 1 ? parts[0] : torch::cat(parts, -1);
    }
    return torch::nn::functional::linear(normed, dense(l, which));
}

at::Tensor LlamaModel::dense(std::size_t layer, Weights which) const {
    if (which == Weights::Current && deferred_[layer]) return deferred_[layer]->dense();
    if (original_deferred_[layer] && (which == Weights::Original || weights_[layer].is_same(originals_[layer])))
        return original_deferred_[layer]->dense();
    return as_f32(which == Weights::Original ? originals_[layer] : weights_[layer]);
}

at::Tensor LlamaModel::run_block(const Block& b, const at::Tensor& x, const Pass& pass) const {
    const double eps = config_.rms_norm_eps;
    auto h = x + attention(b, rms_norm(x, b.input_norm, eps), pass);
    h = h + mlp(b, rms_norm(h, b.post_norm, eps), pass);
    if (streaming_) forget_block(b);
    return h;
}

void LlamaModel::release(std::size_t layer) const {
    const std::string name = registry_.at(layer).weight_name();
    if (streaming_ && checkpoint_.contains(name)) checkpoint_.forget(name);
}

void LlamaModel::forget_block(const Block& b) const {
    for (const auto& name : b.stored) checkpoint_.forget(name);
}

at::Tensor LlamaModel::embed(const at::Tensor& tokens) const {
    if (tokens.dim() != 2) throw Error("embed: tokens must be [batch, seq]");
    if (tokens.numel() > 0 && (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= config_.vocab_size))
        throw Error("embed: token id out of range [0, " + std::to_string(config_.vocab_size) + ")");
    return as_f32(embed_.index_select(0, tokens.reshape({-1}).to(torch::kLong)))
        .view({tokens.size(0), tokens.size(1), -1});
}

at::Tensor LlamaModel::block_forward(int block, const at::Tensor& hidden, const LinearOverride* override,
                                     Weights which, const LinearInputHook* hook) const {
    if (block < 0 || block >= num_blocks())
        throw Error("block_forward: block " + std::to_string(block) + " out of range [0, " +
                    std::to_string(num_blocks()) + ")");
    if (hidden.dim() != 3 || hidden.size(2) != config_.hidden_size)
        throw Error("block_forward: hidden states must be [batch, seq, " + std::to_string(config_.hidden_size) + "]");
    auto [cos, sin] = rope_tables(config_, inv_freq_, hidden.size(1));
    const Pass pass{which, hook, cos, sin, override};
    return run_block(blocks_[static_cast<std::size_t>(block)], hidden, pass);
}

at::Tensor LlamaModel::final_norm(const at::Tensor& hidden) const {
    return rms_norm(hidden, final_norm_, config_.rms_norm_eps);
}

at::Tensor LlamaModel::head_logits(const at::Tensor& hidden, Weights which) const {
    return head(final_norm(hidden), which);
}

at::Tensor LlamaModel::forward_train(const at::Tensor& tokens, const LinearOverride* override, Weights which) const {
    auto x = embed(tokens);
    for (int i = 0; i < num_blocks(); ++i) x = block_forward(i, x, override, which);
    return head_logits(x, which);
}

at::Tensor LlamaModel::weight(std::size_t layer) const {
    (void)weights_.at(layer);  // range check
    return dense(layer, Weights::Current);
}
at::Tensor LlamaModel::original_weight(std::size_t layer) const {
    (void)weights_.at(layer);
    return dense(layer, Weights::Original);
}
bool LlamaModel::is_replaced(std::size_t layer) const {
    return deferred_.at(layer) || !weights_.at(layer).is_same(originals_.at(layer));
}

void LlamaModel::replace_weight(std::size_t layer, const at::Tensor& w) {
    const auto& orig = originals_.at(layer);
    if (w.sizes() != orig.sizes())
        throw Error("replace_weight: layer '" + registry_.at(layer).name + "' expects shape " + shape_str(orig.sizes()) +
                    ", got " + shape_str(w.sizes()));
    weights_[layer] = w.to(torch::kFloat32).contiguous();
    deferred_[layer].reset();
}

void LlamaModel::replace_weight(std::size_t layer, std::shared_ptr<const DeferredWeight> w) {
    const auto& orig = originals_.at(layer);
    if (!w || w->rows() != orig.size(0) || w->cols() != orig.size(1))
        throw Error("replace_weight: layer '" + registry_.at(layer).name + "' expects shape " +
                    shape_str(orig.sizes()) + ", got " +
                    (w ? shape_str({w->rows(), w->cols()}) : std::string("no weight")));
    weights_[layer] = orig;
    deferred_[layer] = std::move(w);
}

void LlamaModel::restore_weight(std::size_t layer) {
    weights_.at(layer) = originals_.at(layer);
    deferred_[layer].reset();
}

void LlamaModel::restore_all() {
    weights_ = originals_;
    std::fill(deferred_.begin(), deferred_.end(), nullptr);
}

std::vector<int32_t> LlamaModel::generate_greedy(const std::vector<int32_t>& prompt, int max_new) const {
    std::vector<int32_t> ids = prompt;
    for (int i = 0; i < max_new; ++i) {
        // No KV cache: the workbench generates only short samples, and the full recompute keeps one code path.
        auto window = std::vector<int64_t>(ids.begin(), ids.end());
        if (static_cast<int64_t>(window.size()) > config_.max_position_embeddings)
            window.erase(window.begin(), window.end() - config_.max_position_embeddings);
        auto t = torch::tensor(window, torch::kLong).unsqueeze(0);
        auto h = forward_hidden(t);
        auto last = logits(h.select(1, h.size(1) - 1));
        int32_t next = static_cast<int32_t>(last.argmax(-1).item<int64_t>());
        ids.push_back(next);
        if (next == config_.eos_token_id) break;
    }
    return std::vector<int32_t>(ids.begin() + prompt.size(), ids.end());
}

}  // namespace quench
