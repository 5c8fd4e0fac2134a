#pragma once
// The QAT trainer: fine-tunes the quantization parameters (and latent weights) of selected layers, starting
// from their PTQ results, with everything else frozen.
//   Block-wise: the selected layers of one transformer block at a time learn to match the full-precision
//     block's output (MSE) on training windows whose inputs come from the already-quantized prefix. Every
//     block trains on the same windows (the budget's share of one block), whose hidden states are carried
//     from block to block (model/hidden_states.h: in memory up to 512 MiB, then a scratch file).
//   End-to-end: ce_weight * next-token cross-entropy on the training text plus kl_weight * KL(P_fp || P_q)
//     against the full-precision model's logits.
// AdamW with two parameter groups (latent weights at lr, scales and affine maps at scale_lr), a cosine or
// warmup-stable-decay schedule, global-norm gradient clipping. Data order is a seeded shuffle of the
// training windows, so a run is a pure function of its inputs and options; checkpoints (atomic, versioned)
// hold the step, the parameters and the optimizer state, so a killed run resumes to the same result.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qat/qat_layer.h"
#include "quant/quantized_tensor.h"

namespace quench {

class LlamaModel;
class ProgressSink;

enum class QatMode { Block = 1, EndToEnd };
enum class QatSchedule { Cosine = 1, Wsd };

struct QatOptions {
    QatMode mode = QatMode::EndToEnd;
    int64_t tokens = 0;  // training budget: tokens of training windows processed (all blocks together)
    int64_t ctx = 128;   // window length
    int64_t batch = 8;   // windows per step
    double lr = QatDefaults{}.lr;              // latent weights (a codec's own: qat_defaults(codec).lr)
    double scale_lr = QatDefaults{}.scale_lr;  // scales, affine maps, input transforms
    double weight_decay = 0;
    QatSchedule schedule = QatSchedule::Cosine;
    double warmup = 0.05;        // fraction of steps with a linear warmup
    double decay = 0.2;          // WSD: fraction of steps of the final linear decay
    double min_lr_ratio = 0.05;  // the schedule ends at lr * min_lr_ratio
    double clip_norm = 1.0;      // global gradient norm; 0 = no clipping
    double ce_weight = 1;        // end-to-end: weight of the next-token cross-entropy (0: pure distillation)
    double kl_weight = 0;        // end-to-end: weight of KL(P_fp || P_q)
    uint64_t seed = 0;
    int64_t eval_every = 0;     // steps between held-out KL measurements (0: first and last step only)
    int64_t eval_windows = 4;   // held-out windows of ctx tokens per measurement
    std::string checkpoint_dir;  // empty: no checkpoints; with one, an existing checkpoint is resumed
    int64_t checkpoint_every = 50;
    QatLayerOptions layer;
};

// Reported after every step.
struct QatProgress {
    int64_t step = 0, total_steps = 0;  // step: completed steps
    int block = -1;                     // block-wise: the block training now
    double loss = 0;
    double heldout_kl = -1;  // nats per token, -1 when not measured at this step
    double tokens_per_second = 0, eta_seconds = 0;
    int64_t tokens_used = 0;
};
using QatCallback = std::function<void(const QatProgress&)>;

struct QatResult {
    std::vector<int64_t> steps;  // one entry per step: step number (1-based), block, loss, learning rate
    std::vector<int64_t> blocks;
    std::vector<double> losses, lrs;
    std::vector<int64_t> kl_steps;  // held-out KL curve
    std::vector<double> kl_values;
    int64_t tokens_used = 0;   // training tokens actually processed
    int64_t total_steps = 0;
    int64_t resumed_from = 0;  // steps loaded from a checkpoint
    double seconds = 0;        // this process's training time
    double final_loss() const { return losses.empty() ? 0 : losses.back(); }
    std::map<std::size_t, QuantizedTensor> tensors;  // the trained layers, exported in their codec
};

// Parses a token budget: "20000", "200k", "1.5M", "2B", or a fraction of a named data size:
// "10%@train" (of train_tokens, the training text's size) or "0.1%@8B". Throws quench::Error naming the text.
int64_t parse_token_budget(const std::string& text, int64_t train_tokens);

// The checkpoint file train_qat writes in and resumes from checkpoint_dir (qat/qat_checkpoint.h).
std::string qat_checkpoint_path(const std::string& checkpoint_dir);

// Trains the layers of ptq (registry index -> PTQ result of codecs with a QAT form) of a model whose
// current weights are their dequantized PTQ weights and whose originals are full precision. On return the
// model's current weights are the trained layers' dequantized exports. heldout_tokens may be empty (no KL
// curve). Throws quench::Error (bad options, too little text, a checkpoint of another run), quench::Cancelled
// (after saving a checkpoint when checkpoint_dir is set).
QatResult train_qat(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& ptq,
                    const std::vector<int32_t>& train_tokens, const std::vector<int32_t>& heldout_tokens,
                    const QatOptions& options, const QatCallback& callback = {}, ProgressSink* progress = nullptr);

}  // namespace quench
