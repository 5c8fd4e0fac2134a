#include "jobs/model_quantizer.h"

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <set>

#include "analysis/block_walk.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "quant/codec.h"
#include "quant/codec_registry.h"
#include "quant/dequantized_layers.h"
#include "quant/spilled_parts.h"

namespace quench {

// FNV-1a: a stable per-layer seed so results don't depend on plan order or platform.
uint64_t layer_seed(uint64_t seed, const std::string& name) {
    return fnv1a(kFnv1aOffset ^ seed, name.data(), name.size());
}

std::vector<LayerPlan> uniform_plan(const std::vector<std::size_t>& layers, const CodecSpec& spec) {
    std::vector<LayerPlan> plan;
    for (std::size_t l : layers) plan.push_back({l, spec});
    return plan;
}

double QuantizeResult::total_bits_per_weight() const {
    double bits = 0, weights = 0;
    std::set<std::string> shared_seen;
    for (const auto& [layer, q] : tensors) {
        weights += static_cast<double>(q.numel());
        for (const auto& p : q.parts) {
            if (p.shared && !shared_seen.insert(q.spec.to_string() + "/" + p.name).second) continue;
            bits += static_cast<double>(p.bits);
        }
    }
    return weights > 0 ? bits / weights : 0.0;
}

std::vector<std::string> refused_layers(const LayerRegistry& layers, const std::vector<LayerPlan>& plan) {
    std::vector<std::string> out;
    for (const auto& p : plan) {
        const auto& info = layers.at(p.layer);
        try {
            make_codec(p.spec)->estimate_bits(info.out_features, info.in_features);
        } catch (const Error& e) {
            out.push_back(info.name + " (" + e.what() + ")");
        }
    }
    return out;
}

PlanBits estimate_plan_bits(const LayerRegistry& layers, const std::vector<LayerPlan>& plan, bool after_qat) {
    PlanBits out;
    std::set<std::string> shared_seen;
    for (const auto& p : plan) {
        const auto& info = layers.at(p.layer);
        const auto codec = make_codec(p.spec);
        const CodecTraits* row = after_qat ? find_codec(p.spec.codec()) : nullptr;
        const BitsEstimate e = row && row->qat && row->qat_bits
                                   ? row->qat_bits(*codec, info.out_features, info.in_features)
                                   : codec->estimate_bits(info.out_features, info.in_features);
        const double n = double(info.out_features) * double(info.in_features);
        out.bits += e.total_bits_per_weight * n;
        if (e.shared_bits > 0 && !shared_seen.insert(p.spec.to_string()).second) out.bits -= double(e.shared_bits);
        out.weights += info.out_features * info.in_features;
    }
    return out;
}

std::string refusal_text(const std::vector<std::string>& refused, std::size_t planned) {
    constexpr std::size_t kNamed = 4;
    std::string text = std::to_string(refused.size()) + " of " + std::to_string(planned) +
                       " layers cannot take their setting: ";
    for (std::size_t i = 0; i < refused.size() && i < kNamed; ++i) text += (i ? "; " : "") + refused[i];
    if (refused.size() > kNamed) text += "; and " + std::to_string(refused.size() - kNamed) + " more";
    return text;
}

const char* calib_inputs_name(CalibInputs c) { return c == CalibInputs::FullPrecision ? "fp" : "quantized"; }

CalibInputs calib_inputs_from_name(const std::string& s) {
    if (s == "quantized") return CalibInputs::Quantized;
    if (s == "fp") return CalibInputs::FullPrecision;
    throw Error("calibration inputs '" + s + "': expected 'quantized' (outputs of the quantized blocks before) or 'fp'");
}

namespace {

// Plan entries (indices into the plan) by the walk position that captures their inputs: the block, or
// num_blocks for lm_head, split into groups whose Hessians fit max_stats_bytes (at least one layer each).
std::map<int, std::vector<std::vector<std::size_t>>> capture_groups(const LlamaModel& model,
                                                                    const std::vector<LayerPlan>& plan,
                                                                    int64_t max_stats_bytes) {
    std::map<int, std::vector<std::size_t>> by_position;
    for (std::size_t k = 0; k < plan.size(); ++k) {
        const int block = model.layers().at(plan[k].layer).block;
        by_position[block < 0 ? model.num_blocks() : block].push_back(k);
    }
    std::map<int, std::vector<std::vector<std::size_t>>> out;
    for (const auto& [position, entries] : by_position) {
        auto& groups = out[position];
        int64_t bytes = 0;
        for (std::size_t k : entries) {
            const int64_t cols = model.layers().at(plan[k].layer).in_features;
            if (groups.empty() || bytes + cols * cols * 4 > max_stats_bytes) {
                groups.emplace_back();
                bytes = 0;
            }
            groups.back().push_back(k);
            bytes += cols * cols * 4;
        }
    }
    return out;
}

}  // namespace

QuantizeResult quantize_model_layers(LlamaModel& model, const std::vector<LayerPlan>& plan,
                                     const std::vector<int32_t>& calib_tokens, const QuantizeOptions& options,
                                     ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    using Clock = std::chrono::steady_clock;
    const auto t_start = Clock::now();
    std::vector<std::shared_ptr<const Codec>> codecs;  // shared with the quantized layers the model holds
    bool any_calib = false;
    std::set<std::size_t> seen;
    for (const auto& p : plan) {
        if (p.layer >= model.layers().size()) throw Error("quantize: layer index " + std::to_string(p.layer) + " out of range");
        if (!seen.insert(p.layer).second) throw Error("quantize: layer '" + model.layers().at(p.layer).name + "' is planned twice");
        codecs.push_back(make_codec(p.spec));
        any_calib = any_calib || codecs.back()->needs_hessian() || codecs.back()->needs_act_scale();
    }
    // Every layer a setting cannot apply to is named before anything runs, not only the first.
    const std::vector<std::string> refused = refused_layers(model.layers(), plan);
    if (!refused.empty()) throw Error("quantize: " + refusal_text(refused, plan.size()));
    if (any_calib && calib_tokens.empty()) throw Error("quantize: the chosen codec needs calibration text (--calib)");

    // A model too big to keep resident streams its weights; its codes then go to a temporary file too, so
    // the job's peak stays one block's worth whatever the depth.
    std::unique_ptr<PartSpill> spill = model.streaming() ? std::make_unique<PartSpill>(options.spill_dir) : nullptr;
    std::vector<LayerResult> done(plan.size());
    std::map<std::size_t, QuantizedTensor> tensors;
    // Quantizes plan entry k from its inputs' statistics (none without calibration text); reports `fraction`.
    // The statistics are consumed: the Hessian is made in place of X^T X (a 7B down_proj's is 484 MB).
    auto quantize_one = [&](std::size_t k, LayerInputStats* stats, const std::string& where, double fraction) {
        prog.check();
        const std::size_t l = plan[k].layer;
        const auto& info = model.layers().at(l);
        CalibStats calib;
        at::Tensor sample;
        if (stats) {
            if (stats->xtx.defined()) {
                if (stats->rows == 0) throw Error("quantize: " + info.name + ": no calibration rows were captured");
                calib.hessian = stats->xtx.div_(static_cast<double>(stats->rows));  // in place, no copy
                stats->xtx = at::Tensor();
            }
            calib.act_scale = stats->abs_mean;
            sample = stats->sample;
        }
        const auto t0 = Clock::now();
        QuantizeContext ctx{stats ? &calib : nullptr, layer_seed(options.seed, info.name), nullptr};
        const at::Tensor w = model.original_weight(l);
        QuantizedTensor q = codecs[k]->quantize(w, ctx);
        LayerMetrics m;
        {
            const at::Tensor wq = codecs[k]->dequantize(q);  // for the metrics only: the model keeps codes
            const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
            m = compare_weights(w, wq, sample);
            m.seconds = secs;
        }
        m.code_bits_per_weight = q.code_bits_per_weight();
        m.total_bits_per_weight = q.total_bits_per_weight();
        if (spill) q = spill->spill(q);
        replace_with_quantized(model, l, q, codecs[k]);
        model.release(l);
        done[k] = {l, info.name, plan[k].spec, m, codecs[k]->transform_note(info.out_features, info.in_features)};
        tensors.emplace(l, std::move(q));
        prog.report(fraction, where + "quantized " + info.name);
    };

    if (calib_tokens.empty() || plan.empty()) {
        for (std::size_t k = 0; k < plan.size(); ++k) quantize_one(k, nullptr, "", double(k + 1) / double(plan.size()));
    } else {
        // One walk: block by block, capture (with the block's own weights as they stand), quantize, then move
        // on with the outputs the next block will see. With full-precision inputs the capture pass itself
        // moves on, with the original weights.
        const auto groups = capture_groups(model, plan, options.max_stats_bytes);
        const int last = groups.rbegin()->first;
        const bool fp = options.calib_inputs == CalibInputs::FullPrecision;
        const auto which = fp ? LlamaModel::Weights::Original : LlamaModel::Weights::Current;
        BlockWalk walk(model, calib_tokens, options.capture, options.hidden_memory_cap, options.spill_dir);
        for (int pos = 0; pos <= last; ++pos) {
            // Progress by position: blocks cost about the same, so the fraction is one a person can time.
            const double f0 = double(pos) / double(last + 1), f1 = double(pos + 1) / double(last + 1);
            const std::string where = pos < model.num_blocks()
                                          ? "block " + std::to_string(pos + 1) + "/" + std::to_string(model.num_blocks()) + ": "
                                          : "head: ";
            const auto it = groups.find(pos);
            if (it == groups.end()) {
                SubProgress sub(prog, f0, f1);
                walk.step({}, which, true, &sub);
                continue;
            }
            const bool more = pos < last;
            const auto& gs = it->second;
            for (std::size_t g = 0; g < gs.size(); ++g) {
                std::vector<std::size_t> layers;
                for (std::size_t k : gs[g]) layers.push_back(plan[k].layer);
                const bool advance = fp && more && g + 1 == gs.size();
                // Of the position's share: capture and quantize its groups in the first three quarters, move
                // on with the quantized block in the last.
                const double g0 = f0 + 0.75 * (f1 - f0) * double(g) / double(gs.size());
                const double g1 = f0 + 0.75 * (f1 - f0) * double(g + 1) / double(gs.size());
                SubProgress sub(prog, g0, (g0 + g1) / 2);
                auto stats = walk.step(layers, which, advance, &sub);
                for (std::size_t i = 0; i < gs[g].size(); ++i) {
                    const std::size_t k = gs[g][i];
                    quantize_one(k, &stats.at(plan[k].layer), where,
                                 (g0 + g1) / 2 + (g1 - g0) / 2 * double(i + 1) / double(gs[g].size()));
                    stats.erase(plan[k].layer);  // each layer's statistics go as soon as it is quantized
                }
            }
            if (more && !fp) {
                SubProgress sub(prog, f0 + (f1 - f0) * 0.75, f1);
                walk.step({}, which, true, &sub);
            }
        }
    }
    QuantizeResult result;
    result.layers = std::move(done);
    result.tensors = std::move(tensors);
    result.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
    return result;
}

}  // namespace quench
