#pragma once
// The Llama-family forward pass in LibTorch (fp32, CPU): RMSNorm, RoPE in the HF rotate-half layout, GQA
// attention with a causal mask, SiLU-gated MLP. Covers LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM (q/k/v biases).
//
// Memory is bounded by one block, not by the model: weights stay as the checkpoint stores them (views of the
// mmap'd F32/F16/BF16 data, never converted up front) and become fp32 one layer at a time when a pass uses
// them; a quantized layer is held as its codes (DeferredWeight) and dequantized on use; with streaming on
// (the default for models over 1 GiB as fp32) each block's pages leave the resident set after the block ran.
// Attention runs in query chunks, so its score matrix stays bounded at long contexts.
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/layer_registry.h"
#include "model/model_config.h"

namespace quench {

class ProgressSink;

// A linear layer's weight held in another form than a dense tensor (a quantized layer's codes and scales):
// a pass asks for the dense fp32 weight when it reaches the layer and drops it after, so the model never
// holds a second dense copy of a quantized layer.
class DeferredWeight {
public:
    virtual ~DeferredWeight() = default;
    virtual at::Tensor dense() const = 0;  // fp32 [out_features, in_features]
    virtual int64_t rows() const = 0;
    virtual int64_t cols() const = 0;
};

// Called with the registry index of a linear layer and its input activations [rows, in_features] just
// before the layer runs. Used by layer capture (GPTQ Hessians, output error) without storing activations.
using LinearInputHook = std::function<void(std::size_t layer, const at::Tensor& input)>;
// Called with the registry index of a linear layer and its input [..., in_features]; returns the layer's
// output [..., out_features], or an undefined tensor to use the stored weight. QAT puts its differentiable
// quantized layers into a forward pass this way.
using LinearOverride = std::function<at::Tensor(std::size_t layer, const at::Tensor& input)>;

// Weights a packed checkpoint gives in another form than plain tensors of the checkpoint, by weight name
// ("model.layers.0.mlp.up_proj.weight").
struct GivenWeights {
    std::map<std::string, at::Tensor> dense;  // already decoded (any weight the model reads)
    // Linear weights held as codes, dequantized on use: these are the layers' originals.
    std::map<std::string, std::shared_ptr<const DeferredWeight>> deferred;
    // Linear weights neither read nor held: a LinearOverride given to every pass computes them
    // (runtime/packed_model.h runs them through the packed kernels). Each stands in as a zero-stride NaN
    // tensor of its shape, which costs no memory and turns a pass without the override into NaN rather
    // than plausible numbers.
    std::vector<std::string> external;
};

class LlamaModel {
public:
    // Loads config.json and the weights from an HF model directory; validates every expected tensor's
    // presence and shape (errors name the directory, the tensor and both shapes).
    // Plain HF checkpoints only: a packed Quench checkpoint (quant_method "quench") needs the codecs and is
    // opened by load_model (io/model_loading.h), which every front end and job calls.
    static std::unique_ptr<LlamaModel> load(const std::string& dir, ProgressSink* progress = nullptr);
    // Builds a model from a config and a checkpoint already open (synthetic models, tests), with some weights
    // given in another form (a packed checkpoint stores those as codec parts, not as tensors the checkpoint
    // could map). Throws when a given name is not a weight this model reads (deferred and external ones:
    // not a linear layer's weight), or has the wrong shape.
    LlamaModel(ModelConfig config, Checkpoint checkpoint, GivenWeights given = {});
    ~LlamaModel();

    const ModelConfig& config() const { return config_; }
    const LayerRegistry& layers() const { return registry_; }
    const Checkpoint& checkpoint() const { return checkpoint_; }
    const std::string& dir() const { return checkpoint_.dir(); }
    int64_t num_params() const;  // every weight, embeddings counted once when tied
    // Every tensor the forward pass reads, by checkpoint name, in load order (exporters write these).
    const std::vector<std::string>& tensor_names() const { return tensor_names_; }
    // The weights that were given (decoded, deferred or external: loaded from a packed checkpoint), i.e. not
    // read from the checkpoint's tensors; empty for an HF checkpoint.
    const std::vector<std::string>& decoded_weights() const { return decoded_names_; }

    // Which weights a forward pass uses: the current ones (some replaced by quantized versions) or the
    // checkpoint's originals. Lets one loaded model serve as both sides of a KL comparison.
    enum class Weights { Current = 1, Original };

    // tokens: int64 [batch, seq]. Returns the final-normed hidden states [batch, seq, hidden]. An override
    // computes the linear layers it answers for (packed kernels reading a quantized checkpoint).
    at::Tensor forward_hidden(const at::Tensor& tokens, const LinearInputHook* hook = nullptr,
                              Weights which = Weights::Current, const LinearOverride* override = nullptr) const;
    // Logits for hidden states [..., hidden] -> [..., vocab]; callers chunk over positions to bound memory.
    at::Tensor logits(const at::Tensor& hidden, Weights which = Weights::Current,
                      const LinearOverride* override = nullptr) const;
    at::Tensor forward(const at::Tensor& tokens) const { return logits(forward_hidden(tokens)); }

    // Training passes (QAT). Unlike forward_hidden and logits they leave grad mode to the caller, so a
    // graph is built through the override's parameters when the caller enables grad (the model's own
    // weights never require grad).
    int num_blocks() const { return static_cast<int>(config_.num_hidden_layers); }
    at::Tensor embed(const at::Tensor& tokens) const;  // int64 [batch, seq] -> [batch, seq, hidden]
    // One transformer block on hidden states [batch, seq, hidden] (positions 0..seq-1); the hook sees the
    // inputs of the block's linear layers, as in forward_hidden. Block-major passes (analysis/block_walk.h)
    // run the model this way, one block over every window before the next.
    at::Tensor block_forward(int block, const at::Tensor& hidden, const LinearOverride* override = nullptr,
                             Weights which = Weights::Current, const LinearInputHook* hook = nullptr) const;
    // The final RMSNorm: hidden states after the last block -> lm_head's input.
    at::Tensor final_norm(const at::Tensor& hidden) const;
    // Final RMSNorm then lm_head: hidden states after the last block -> logits.
    at::Tensor head_logits(const at::Tensor& hidden, Weights which = Weights::Current) const;
    // embed, every block, head_logits.
    at::Tensor forward_train(const at::Tensor& tokens, const LinearOverride* override = nullptr,
                             Weights which = Weights::Current) const;

    // Quantization support: the current weight of a registry layer and its original, each as fp32 for one
    // use (converted from the stored dtype or dequantized from codes; the model keeps neither copy);
    // replacement with a dense weight of the same shape, or with a deferred one that is dequantized on use
    // (throws on a shape mismatch); restore puts the original back.
    at::Tensor weight(std::size_t layer) const;
    at::Tensor original_weight(std::size_t layer) const;
    void replace_weight(std::size_t layer, const at::Tensor& w);
    void replace_weight(std::size_t layer, std::shared_ptr<const DeferredWeight> w);
    void restore_weight(std::size_t layer);
    void restore_all();
    bool is_replaced(std::size_t layer) const;

    // Streaming: after each block of a pass, its checkpoint pages leave the resident set (Checkpoint::forget).
    // On by default when the weights are over 1 GiB as fp32; the numbers are the same either way.
    void set_streaming(bool on) { streaming_ = on; }
    // Attention runs in chunks of query rows whose score matrix (batch x heads x rows x keys fp32) stays under
    // this many bytes (default 256 MiB: a ctx-8192 window with 32 heads in chunks of 256 rows); a window
    // whose whole matrix fits is one chunk.
    void set_attention_budget(int64_t bytes) { attention_budget_ = bytes; }
    // With streaming on, drops one layer's stored pages after a job read it outside a pass (a quantizer).
    void release(std::size_t layer) const;
    bool streaming() const { return streaming_; }

    // Greedy decoding of up to max_new tokens after the prompt (stops at EOS).
    std::vector<int32_t> generate_greedy(const std::vector<int32_t>& prompt, int max_new) const;

private:
    struct Block;
    struct Pass;  // per-call state: weight set, hook, rope tables
    at::Tensor attention(const Block& b, const at::Tensor& x, const Pass& pass) const;
    at::Tensor mlp(const Block& b, const at::Tensor& x, const Pass& pass) const;
    at::Tensor linear(std::size_t layer, const at::Tensor& x, const at::Tensor& bias, const Pass& pass) const;
    at::Tensor run_block(const Block& b, const at::Tensor& x, const Pass& pass) const;
    at::Tensor dense(std::size_t layer, Weights which) const;
    at::Tensor head(const at::Tensor& normed, Weights which) const;
    void forget_block(const Block& b) const;

    ModelConfig config_;
    Checkpoint checkpoint_;
    LayerRegistry registry_;
    std::vector<at::Tensor> weights_;    // current weight per registry layer, as stored (any float dtype)
    std::vector<at::Tensor> originals_;  // checkpoint weight per registry layer, as stored
    std::vector<std::shared_ptr<const DeferredWeight>> deferred_;           // set where a layer is held as codes
    std::vector<std::shared_ptr<const DeferredWeight>> original_deferred_;  // originals held as codes
    std::vector<Block> blocks_;
    at::Tensor embed_, final_norm_;
    at::Tensor inv_freq_;
    std::vector<std::string> tensor_names_, decoded_names_;
    bool streaming_ = false;
    int64_t attention_budget_ = int64_t(256) << 20;
};

}  // namespace quench
