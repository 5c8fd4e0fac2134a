#include "analysis/kl_probe.h"

#include <torch/torch.h>

#include <chrono>

#include "common/error.h"
#include "common/progress.h"
#include "common/scratch_file.h"

namespace quench {
namespace {

// Runs blocks [from, num_blocks) over batches [g0, g1) of states, block-major, and returns them final-normed.
std::vector<at::Tensor> run_from(const LlamaModel& m, const HiddenStates& states, int from, std::size_t g0,
                                 std::size_t g1, LlamaModel::Weights which, ProgressSink& progress) {
    std::vector<at::Tensor> h;
    for (std::size_t b = g0; b < g1; ++b) h.push_back(states.get(b));
    for (int k = from; k < m.num_blocks(); ++k)
        for (auto& x : h) {
            progress.check();
            x = m.block_forward(k, x, nullptr, which);
        }
    for (auto& x : h) x = m.final_norm(x);
    return h;
}

}  // namespace

KlProbe::KlProbe(const LlamaModel& model, const std::vector<int32_t>& tokens, EvalOptions options, int32_t bos_id,
                 int64_t memory_cap, const std::string& spill_dir, ProgressSink* progress)
    : model_(model), plan_(plan_eval(model, tokens, options, bos_id)), states_(memory_cap, spill_dir) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    for (const auto& b : plan_.batches) states_.append(model.embed(b.input));
    reference_ = std::make_unique<ScratchFile>("quench-kl-reference", spill_dir);
    std::size_t offset = 0;
    const int64_t hidden = model.config().hidden_size;
    for (std::size_t g0 = 0; g0 < plan_.batches.size();) {
        const std::size_t g1 = group_end(plan_, g0, hidden);
        const auto h = run_from(model, states_, 0, g0, g1, LlamaModel::Weights::Original, prog);
        for (std::size_t g = g0; g < g1; ++g)
            for_each_scored_chunk(plan_, g, [&](int64_t r, int64_t q0, int64_t n, const at::Tensor&) {
                const at::Tensor la = torch::log_softmax(
                    model.logits(h[g - g0][r].narrow(0, q0, n), LlamaModel::Weights::Original), -1).contiguous();
                reference_->write_at(offset, la.data_ptr(), la.nbytes(), "reference log-probabilities");
                offset += la.nbytes();
            });
        prog.report(double(g1) / double(plan_.batches.size()), "KL reference");
        g0 = g1;
    }
}

KlProbe::~KlProbe() = default;

void KlProbe::advance(ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    if (position_ >= model_.num_blocks()) throw Error("KL probe: there is no block after the last one");
    for (std::size_t b = 0; b < states_.size(); ++b) {
        prog.check();
        states_.set(b, model_.block_forward(position_, states_.get(b), nullptr, LlamaModel::Weights::Original));
    }
    ++position_;
}

KlReport KlProbe::measure(ProgressSink* progress) const {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t vocab = model_.config().vocab_size;
    KlSums sums;
    sums.per_token_kl.reserve(static_cast<std::size_t>(plan_.protocol.scored_tokens));
    std::size_t offset = 0;
    const int64_t hidden = model_.config().hidden_size;
    for (std::size_t g0 = 0; g0 < plan_.batches.size();) {
        const std::size_t g1 = group_end(plan_, g0, hidden);
        const auto h = run_from(model_, states_, position_, g0, g1, LlamaModel::Weights::Current, prog);
        for (std::size_t g = g0; g < g1; ++g)
            for_each_scored_chunk(plan_, g, [&](int64_t r, int64_t q0, int64_t n, const at::Tensor& target) {
                at::Tensor la = torch::empty({n, vocab}, torch::kFloat32);
                reference_->read_at(offset, la.data_ptr(), la.nbytes(), "reference log-probabilities");
                offset += la.nbytes();
                const at::Tensor lb = torch::log_softmax(model_.logits(h[g - g0][r].narrow(0, q0, n)), -1);
                sums.add(la, lb, target);
            });
        prog.report(double(g1) / double(plan_.batches.size()), "KL");
        g0 = g1;
    }
    KlReport r = kl_report(plan_, std::move(sums));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace quench
