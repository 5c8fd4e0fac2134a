#include "jobs/model_quantizer.h"

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <set>

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

    QuantizeResult result;
    // A model too big to keep resident streams its weights; its codes then go to a temporary file too, so
    // the job's peak stays one block's worth whatever the depth.
    std::unique_ptr<PartSpill> spill = model.streaming() ? std::make_unique<PartSpill>() : nullptr;
    std::size_t i = 0;
    while (i < plan.size()) {
        prog.check();
        // A chunk: consecutive plan entries whose Hessians fit the memory budget (at least one layer).
        std::size_t j = i;
        int64_t bytes = 0;
        while (j < plan.size()) {
            const int64_t cols = model.layers().at(plan[j].layer).in_features;
            if (j > i && bytes + cols * cols * 4 > options.max_stats_bytes) break;
            bytes += cols * cols * 4;
            ++j;
        }
        std::map<std::size_t, LayerInputStats> stats;
        if (!calib_tokens.empty()) {
            std::vector<std::size_t> layers;
            for (std::size_t k = i; k < j; ++k) layers.push_back(plan[k].layer);
            SubProgress sub(prog, static_cast<double>(i) / plan.size(), (i + 0.5 * (j - i)) / plan.size());
            stats = capture_layer_inputs(model, layers, calib_tokens, options.capture, &sub);
        }
        for (std::size_t k = i; k < j; ++k) {
            prog.check();
            const std::size_t l = plan[k].layer;
            const auto& info = model.layers().at(l);
            CalibStats calib;
            at::Tensor sample;
            if (auto it = stats.find(l); it != stats.end()) {
                calib.hessian = it->second.hessian();
                calib.act_scale = it->second.abs_mean;
                sample = it->second.sample;
            }
            const auto t0 = Clock::now();
            QuantizeContext ctx{calib_tokens.empty() ? nullptr : &calib, layer_seed(options.seed, info.name), nullptr};
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
            result.layers.push_back({l, info.name, plan[k].spec, m, codecs[k]->transform_note(info.out_features, info.in_features)});
            result.tensors.emplace(l, std::move(q));
            prog.report(static_cast<double>(k + 1) / plan.size(), "quantizing " + info.name);
        }
        i = j;
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
    return result;
}

}  // namespace quench
