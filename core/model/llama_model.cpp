#include "model/llama_model.h"

#include <torch/torch.h>

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
};

struct LlamaModel::Pass {
    const std::vector<at::Tensor>& weights;
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

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
    auto var = x.pow(2).mean(-1, /*keepdim=*/true);
    return w * (x * torch::rsqrt(var + eps));
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

LlamaModel::LlamaModel(ModelConfig config, Checkpoint checkpoint)
    : LlamaModel(std::move(config), std::move(checkpoint), {}, {}) {}

LlamaModel::LlamaModel(ModelConfig config, Checkpoint checkpoint, std::map<std::string, at::Tensor> decoded)
    : LlamaModel(std::move(config), std::move(checkpoint), std::move(decoded), {}) {}

LlamaModel::LlamaModel(ModelConfig config, Checkpoint checkpoint, std::map<std::string, at::Tensor> decoded,
                       const std::vector<std::string>& external)
    : config_(std::move(config)), checkpoint_(std::move(checkpoint)) {
    const auto& c = config_;
    std::set<std::string> outside(external.begin(), external.end());
    auto fetch = [&](const std::string& name, std::vector<int64_t> shape) {
        tensor_names_.push_back(name);
        at::Tensor t;
        if (auto it = decoded.find(name); it != decoded.end()) {
            t = it->second.to(torch::kFloat32).contiguous();
            decoded_names_.push_back(name);
            decoded.erase(it);
        } else {
            if (!checkpoint_.contains(name)) throw Error(checkpoint_.dir() + ": missing tensor '" + name + "'");
            t = checkpoint_.tensor_f32(name);
        }
        if (t.sizes() != at::IntArrayRef(shape))
            throw Error(checkpoint_.dir() + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) +
                        ", config.json implies " + shape_str(shape));
        return t;
    };
    std::vector<LayerInfo> infos;
    auto add_linear = [&](const std::string& name, int block, LayerKind kind, int64_t out, int64_t in) {
        if (outside.erase(name + ".weight")) {
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
    registry_ = LayerRegistry(std::move(infos));
    originals_ = weights_;
    inv_freq_ = rope_inv_freq(c);
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
    const at::Tensor& w = pass.weights[layer];
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
    auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(D));
    auto mask = torch::ones({T, T}, torch::kBool).triu(1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
    auto ctx = torch::matmul(torch::softmax(scores, -1), v);
    ctx = ctx.transpose(1, 2).reshape({B, T, H * D});
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
    const Pass pass{which == Weights::Original ? originals_ : weights_, hook, cos, sin, override};
    auto x = embed_.index_select(0, tokens.reshape({-1}).to(torch::kLong)).view({tokens.size(0), T, -1});
    const double eps = config_.rms_norm_eps;
    for (const auto& b : blocks_) {
        x = x + attention(b, rms_norm(x, b.input_norm, eps), pass);
        x = x + mlp(b, rms_norm(x, b.post_norm, eps), pass);
    }
    auto out = rms_norm(x, final_norm_, eps);
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
    return torch::nn::functional::linear(hidden, which == Weights::Original ? originals_.back() : weights_.back());
}

at::Tensor LlamaModel::embed(const at::Tensor& tokens) const {
    if (tokens.dim() != 2) throw Error("embed: tokens must be [batch, seq]");
    if (tokens.numel() > 0 && (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= config_.vocab_size))
        throw Error("embed: token id out of range [0, " + std::to_string(config_.vocab_size) + ")");
    return embed_.index_select(0, tokens.reshape({-1}).to(torch::kLong)).view({tokens.size(0), tokens.size(1), -1});
}

at::Tensor LlamaModel::block_forward(int block, const at::Tensor& hidden, const LinearOverride* override,
                                     Weights which) const {
    if (block < 0 || block >= num_blocks())
        throw Error("block_forward: block " + std::to_string(block) + " out of range [0, " +
                    std::to_string(num_blocks()) + ")");
    if (hidden.dim() != 3 || hidden.size(2) != config_.hidden_size)
        throw Error("block_forward: hidden states must be [batch, seq, " + std::to_string(config_.hidden_size) + "]");
    auto [cos, sin] = rope_tables(config_, inv_freq_, hidden.size(1));
    Pass pass{which == Weights::Original ? originals_ : weights_, nullptr, cos, sin};
    pass.override = override;
    const auto& b = blocks_[static_cast<std::size_t>(block)];
    const double eps = config_.rms_norm_eps;
    auto x = hidden + attention(b, rms_norm(hidden, b.input_norm, eps), pass);
    return x + mlp(b, rms_norm(x, b.post_norm, eps), pass);
}

at::Tensor LlamaModel::head_logits(const at::Tensor& hidden, Weights which) const {
    const auto normed = rms_norm(hidden, final_norm_, config_.rms_norm_eps);
    return torch::nn::functional::linear(normed, which == Weights::Original ? originals_.back() : weights_.back());
}

at::Tensor LlamaModel::forward_train(const at::Tensor& tokens, const LinearOverride* override, Weights which) const {
    auto x = embed(tokens);
    for (int i = 0; i < num_blocks(); ++i) x = block_forward(i, x, override, which);
    return head_logits(x, which);
}

const at::Tensor& LlamaModel::weight(std::size_t layer) const { return weights_.at(layer); }
const at::Tensor& LlamaModel::original_weight(std::size_t layer) const { return originals_.at(layer); }
bool LlamaModel::is_replaced(std::size_t layer) const { return !weights_.at(layer).is_same(originals_.at(layer)); }

void LlamaModel::replace_weight(std::size_t layer, const at::Tensor& w) {
    const auto& orig = originals_.at(layer);
    if (w.sizes() != orig.sizes())
        throw Error("replace_weight: layer '" + registry_.at(layer).name + "' expects shape " + shape_str(orig.sizes()) +
                    ", got " + shape_str(w.sizes()));
    weights_[layer] = w.to(torch::kFloat32).contiguous();
}

void LlamaModel::restore_weight(std::size_t layer) { weights_.at(layer) = originals_.at(layer); }
void LlamaModel::restore_all() { weights_ = originals_; }

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
