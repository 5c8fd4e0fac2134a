#include "qat/qat_trainer.h"

#include "qat/qat_checkpoint.h"
#include "qat/qat_schedule.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "common/error.h"
#include "common/progress.h"
#include "model/hidden_states.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/dequantized_layers.h"

namespace quench {
namespace {

at::Tensor windows_tensor(const std::vector<int32_t>& tokens, const std::vector<int64_t>& starts, int64_t ctx) {
    at::Tensor t = torch::empty({static_cast<int64_t>(starts.size()), ctx}, torch::kLong);
    auto acc = t.accessor<int64_t, 2>();
    for (std::size_t i = 0; i < starts.size(); ++i)
        for (int64_t j = 0; j < ctx; ++j) acc[static_cast<int64_t>(i)][j] = tokens[static_cast<std::size_t>(starts[i] + j)];
    return t;
}

// Mean over positions of KL(P_ref || P_test) from logits [..., vocab].
at::Tensor mean_kl(const at::Tensor& ref_logits, const at::Tensor& test_logits) {
    const at::Tensor lp = torch::log_softmax(ref_logits, -1), lq = torch::log_softmax(test_logits, -1);
    return (lp.exp() * (lp - lq)).sum(-1).mean();
}

struct Trainer {
    LlamaModel& model;
    const QatOptions& o;
    std::map<std::size_t, std::unique_ptr<QatLayer>> layers;
    std::vector<int> blocks;  // blocks holding trained layers, in order (block-wise mode)
    int64_t total_steps = 0, steps_per_block = 0;
    std::string sig;
    QatResult result;
    // Block-wise: every block trains on the same windows (local step s takes the shuffle's windows s * batch
    // on), as block reconstruction does in GPTQ's pipeline: their inputs to the block in training are kept
    // here and moved one block on through the trained layers when a block is done, so the prefix runs once
    // per window and block, not once per step from the embeddings (quadratic in depth).
    std::unique_ptr<HiddenStates> inputs;
    int inputs_at = 0;  // the block whose input `inputs` holds

    std::vector<int64_t> window_starts(WindowOrder& order, int64_t data_step) const {
        std::vector<int64_t> starts;
        for (int64_t i = 0; i < o.batch; ++i) starts.push_back(order.at(data_step * o.batch + i) * o.ctx);
        return starts;
    }

    // Makes `inputs` the inputs of block `block` for every local step, computed with the trained layers of
    // earlier blocks. Throws quench::Cancelled between windows (inputs are then rebuilt on the next call).
    void inputs_of(int block, const std::vector<int32_t>& tokens, WindowOrder& order, ProgressSink& sink) {
        torch::NoGradGuard no_grad;
        if (!inputs) {
            auto fresh = std::make_unique<HiddenStates>();
            for (int64_t s = 0; s < steps_per_block; ++s)
                fresh->append(model.embed(windows_tensor(tokens, window_starts(order, s), o.ctx)));
            inputs = std::move(fresh);
            inputs_at = 0;
        }
        const LinearOverride ov = override_fn();
        for (; inputs_at < block; ++inputs_at)
            for (std::size_t i = 0; i < inputs->size(); ++i) {
                if (sink.cancelled()) {
                    inputs.reset();  // half moved on: not the input of any block
                    sink.check();
                }
                inputs->set(i, model.block_forward(inputs_at, inputs->get(i), &ov));
            }
    }

    LinearOverride override_fn() const {
        return [this](std::size_t layer, const at::Tensor& x) -> at::Tensor {
            auto it = layers.find(layer);
            return it == layers.end() ? at::Tensor() : it->second->forward(x);
        };
    }

    std::vector<at::Tensor> block_params(int block, QatParamKind kind) const {
        std::vector<at::Tensor> out;
        for (const auto& [layer, l] : layers)
            if (block < 0 || model.layers().at(layer).block == block)
                for (const auto& p : l->params())
                    if (p.kind == kind) out.push_back(p.tensor);
        return out;
    }

    std::unique_ptr<torch::optim::AdamW> make_optimizer(int block) const {
        std::vector<torch::optim::OptimizerParamGroup> groups;
        auto opts = [&](double lr) {
            auto a = std::make_unique<torch::optim::AdamWOptions>(lr);
            a->weight_decay(o.weight_decay);
            return a;
        };
        groups.emplace_back(block_params(block, QatParamKind::Latent), opts(o.lr));
        groups.emplace_back(block_params(block, QatParamKind::Scale), opts(o.scale_lr));
        return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
    }

    int block_of_step(int64_t step) const {
        if (o.mode == QatMode::EndToEnd) return -1;
        return blocks[static_cast<std::size_t>(std::min<int64_t>(step / steps_per_block, static_cast<int64_t>(blocks.size()) - 1))];
    }
    int64_t local_step(int64_t step) const { return o.mode == QatMode::EndToEnd ? step : step % steps_per_block; }
    int64_t local_total() const { return o.mode == QatMode::EndToEnd ? total_steps : steps_per_block; }

    void save(int64_t done, torch::optim::AdamW& opt) const {
        save_qat_checkpoint(o.checkpoint_dir, sig, done, result, layers, opt);
    }

    // Resumes from the checkpoint when there is one; the optimizer state is loaded only when it belongs to
    // the block (or run) that continues. Returns the completed steps.
    int64_t load(std::unique_ptr<torch::optim::AdamW>& opt) {
        return load_qat_checkpoint(o.checkpoint_dir, sig, result, layers, [&](int64_t done) -> torch::optim::Optimizer* {
            if (done >= total_steps || local_step(done) == 0) return nullptr;
            opt = make_optimizer(block_of_step(done));
            return opt.get();
        });
    }

    double heldout_kl(const at::Tensor& heldout) const {
        if (!heldout.defined()) return -1;
        torch::NoGradGuard no_grad;
        const LinearOverride ov = override_fn();
        const at::Tensor ref = model.forward_train(heldout, nullptr, LlamaModel::Weights::Original);
        return mean_kl(ref, model.forward_train(heldout, &ov)).item<double>();
    }

    // End-to-end: one step's loss with its graph.
    at::Tensor e2e_loss(const at::Tensor& batch) const {
        const LinearOverride ov = override_fn();
        const at::Tensor logits = model.forward_train(batch, &ov);
        const int64_t T = batch.size(1);
        const at::Tensor pred = logits.narrow(1, 0, T - 1);
        at::Tensor l = o.ce_weight * torch::nn::functional::cross_entropy(pred.reshape({-1, pred.size(-1)}),
                                                                         batch.narrow(1, 1, T - 1).reshape({-1}));
        if (o.kl_weight > 0) {
            at::Tensor ref;
            {
                torch::NoGradGuard no_grad;
                ref = model.forward_train(batch, nullptr, LlamaModel::Weights::Original);
            }
            l = l + o.kl_weight * mean_kl(ref, logits);
        }
        return l;
    }

    // Block-wise: h is the block's input from the quantized prefix (earlier blocks with their trained
    // layers); the target is the full-precision block on it.
    at::Tensor block_loss(const at::Tensor& h, int block) const {
        const LinearOverride ov = override_fn();
        at::Tensor target;
        {
            torch::NoGradGuard no_grad;
            target = model.block_forward(block, h, nullptr, LlamaModel::Weights::Original);
        }
        return torch::mse_loss(model.block_forward(block, h, &ov), target);
    }
};

}  // namespace

QatResult train_qat(LlamaModel& model, const std::map<std::size_t, QuantizedTensor>& ptq,
                    const std::vector<int32_t>& train_tokens, const std::vector<int32_t>& heldout_tokens,
                    const QatOptions& o, const QatCallback& callback, ProgressSink* progress) {
    ProgressSink& sink = progress ? *progress : null_progress();
    if (ptq.empty()) throw Error("qat: no layers selected");
    if (o.ctx < 2 || o.batch < 1) throw Error("qat: ctx must be >= 2 and batch >= 1");
    if (o.tokens < 1) throw Error("qat: tokens (the training budget) must be positive");
    if (o.mode == QatMode::EndToEnd && !(o.ce_weight > 0 || o.kl_weight > 0))
        throw Error("qat: ce_weight and kl_weight are both 0, so end-to-end training has no loss");
    const int64_t n_windows = static_cast<int64_t>(train_tokens.size()) / o.ctx;
    if (n_windows < 1)
        throw Error("qat: training text has " + std::to_string(train_tokens.size()) + " tokens, fewer than one window of " +
                    std::to_string(o.ctx));

    Trainer tr{model, o, {}, {}, 0, 0, {}, {}, nullptr, 0};
    for (const auto& [layer, t] : ptq) {
        tr.layers[layer] = make_qat_layer(t, model.original_weight(layer), o.layer);
        const int b = model.layers().at(layer).block;
        if (b < 0) throw Error("qat: layer '" + model.layers().at(layer).name + "' is not in a transformer block");
        if (tr.blocks.empty() || tr.blocks.back() != b) tr.blocks.push_back(b);
    }
    std::sort(tr.blocks.begin(), tr.blocks.end());
    tr.blocks.erase(std::unique(tr.blocks.begin(), tr.blocks.end()), tr.blocks.end());
    const int64_t per_step = o.batch * o.ctx;
    tr.total_steps = std::max<int64_t>(1, o.tokens / per_step);
    if (o.mode == QatMode::Block) {
        tr.steps_per_block = std::max<int64_t>(1, tr.total_steps / static_cast<int64_t>(tr.blocks.size()));
        tr.total_steps = tr.steps_per_block * static_cast<int64_t>(tr.blocks.size());
    }
    tr.sig = qat_signature(o, ptq, tr.total_steps);
    tr.result.total_steps = tr.total_steps;

    at::Tensor heldout;
    if (!heldout_tokens.empty() && o.eval_windows > 0) {
        std::vector<int64_t> starts;
        for (int64_t s = 0; s + o.ctx <= static_cast<int64_t>(heldout_tokens.size()) &&
                            static_cast<int64_t>(starts.size()) < o.eval_windows;
             s += o.ctx)
            starts.push_back(s);
        if (!starts.empty()) heldout = windows_tensor(heldout_tokens, starts, o.ctx);
    }

    std::unique_ptr<torch::optim::AdamW> opt;
    const int64_t start = tr.load(opt);
    tr.result.resumed_from = start;
    WindowOrder order(n_windows, o.seed);
    torch::AutoGradMode grad(true);
    const auto t0 = std::chrono::steady_clock::now();
    if (start == 0 && heldout.defined()) {
        tr.result.kl_steps.push_back(0);
        tr.result.kl_values.push_back(tr.heldout_kl(heldout));
    }
    int opt_block = start < tr.total_steps && tr.local_step(start) != 0 ? tr.block_of_step(start) : -2;
    for (int64_t step = start; step < tr.total_steps; ++step) {
        const int block = tr.block_of_step(step);
        try {
            sink.check();
            if (o.mode == QatMode::Block) tr.inputs_of(block, train_tokens, order, sink);
        } catch (const Cancelled&) {
            if (!o.checkpoint_dir.empty() && opt) tr.save(step, *opt);
            throw;
        }
        if (!opt || tr.local_step(step) == 0 || opt_block != block) {
            opt = tr.make_optimizer(block);
            opt_block = block;
        }
        const double factor = schedule_factor(o, tr.local_step(step), tr.local_total());
        auto& groups = opt->param_groups();
        static_cast<torch::optim::AdamWOptions&>(groups[0].options()).lr(o.lr * factor);
        static_cast<torch::optim::AdamWOptions&>(groups[1].options()).lr(o.scale_lr * factor);

        opt->zero_grad();
        const at::Tensor l =
            o.mode == QatMode::Block
                ? tr.block_loss(tr.inputs->get(static_cast<std::size_t>(tr.local_step(step))), block)
                : tr.e2e_loss(windows_tensor(train_tokens, tr.window_starts(order, step), o.ctx));
        l.backward();
        if (o.clip_norm > 0) {
            std::vector<at::Tensor> all = tr.block_params(block, QatParamKind::Latent);
            for (auto& p : tr.block_params(block, QatParamKind::Scale)) all.push_back(p);
            torch::nn::utils::clip_grad_norm_(all, o.clip_norm);
        }
        opt->step();
        tr.result.tokens_used += per_step;
        tr.result.steps.push_back(step + 1);
        tr.result.blocks.push_back(block);
        tr.result.losses.push_back(l.item<double>());
        tr.result.lrs.push_back(o.lr * factor);

        QatProgress p;
        p.step = step + 1;
        p.total_steps = tr.total_steps;
        p.block = block;
        p.loss = tr.result.losses.back();
        const bool last = step + 1 == tr.total_steps;
        if (heldout.defined() && (last || (o.eval_every > 0 && (step + 1) % o.eval_every == 0))) {
            p.heldout_kl = tr.heldout_kl(heldout);
            tr.result.kl_steps.push_back(step + 1);
            tr.result.kl_values.push_back(p.heldout_kl);
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double done_here = static_cast<double>(step + 1 - start);
        p.tokens_per_second = secs > 0 ? done_here * per_step / secs : 0;
        p.eta_seconds = secs / done_here * static_cast<double>(tr.total_steps - step - 1);
        p.tokens_used = tr.result.tokens_used;
        sink.report(static_cast<double>(step + 1) / tr.total_steps, "QAT step " + std::to_string(step + 1));
        if (!o.checkpoint_dir.empty() && (last || (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0)))
            tr.save(step + 1, *opt);
        if (callback) callback(p);
    }
    tr.result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    for (const auto& [layer, l] : tr.layers) {
        QuantizedTensor q = l->export_tensor();
        replace_with_quantized(model, layer, q);
        tr.result.tensors.emplace(layer, std::move(q));
    }
    return std::move(tr.result);
}

}  // namespace quench
