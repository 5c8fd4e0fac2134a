#include "jobs/sensitivity.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <set>

#include "analysis/block_walk.h"
#include "analysis/kl_probe.h"
#include "analysis/layer_capture.h"
#include "analysis/layer_metrics.h"
#include "analysis/model_eval.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/progress.h"
#include "model/llama_model.h"
#include "jobs/model_quantizer.h"
#include "quant/codec.h"

namespace quench {
namespace {

uint64_t token_hash(const std::vector<int32_t>& t) {
    uint64_t h = kFnv1aOffset;
    for (int32_t v : t) {
        const auto u = static_cast<uint32_t>(v);  // little-endian bytes on every platform
        const uint8_t bytes[4] = {uint8_t(u), uint8_t(u >> 8), uint8_t(u >> 16), uint8_t(u >> 24)};
        h = fnv1a(h, bytes, 4);
    }
    return h;
}

// Puts the layer's original weight back however the scope is left.
struct RestoreGuard {
    LlamaModel& model;
    std::size_t layer;
    ~RestoreGuard() { model.restore_weight(layer); }
};

std::string describe(const SensitivitySettings& s) {
    return "calib_tokens=" + std::to_string(s.calib_tokens) + " kl_tokens=" + std::to_string(s.kl_tokens) +
           " ctx=" + std::to_string(s.ctx) + " sample_rows=" + std::to_string(s.sample_rows) +
           " seed=" + std::to_string(s.seed);
}

}  // namespace

std::vector<std::string> parse_candidate_list(const std::string& list) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t end = list.find(';', start);
        if (end == std::string::npos) end = list.size();
        std::string item = list.substr(start, end - start);
        const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
        item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
        if (!item.empty()) {
            const std::string canon = CodecSpec::parse(item).to_string();
            if (std::find(out.begin(), out.end(), canon) == out.end()) out.push_back(canon);
        }
        start = end + 1;
    }
    if (out.empty()) throw Error("candidates: no codec spec in '" + list + "'");
    return out;
}

SensitivityStats measure_sensitivity(LlamaModel& model, const std::vector<std::size_t>& layers,
                                     const std::vector<std::string>& candidates,
                                     const std::vector<int32_t>& calib_tokens, const std::vector<int32_t>& kl_tokens,
                                     int32_t bos_id, const SensitivityOptions& options, Measurements& m,
                                     ProgressSink* progress) {
    torch::NoGradGuard no_grad;
    ProgressSink& prog = progress ? *progress : null_progress();
    using Clock = std::chrono::steady_clock;
    const auto t_start = Clock::now();
    SensitivityStats stats;
    if (calib_tokens.empty()) throw Error("sensitivity: calibration tokens: none given");
    if (kl_tokens.size() < 2) throw Error("sensitivity: KL tokens: need at least 2");
    if (candidates.empty()) throw Error("sensitivity: candidates: none given");
    for (std::size_t l : layers) {
        if (l >= model.layers().size()) throw Error("sensitivity: layer index " + std::to_string(l) + " out of range");
        if (model.is_replaced(l))
            throw Error("sensitivity: layer '" + model.layers().at(l).name + "': weight already replaced");
    }

    SensitivitySettings settings;
    settings.model = model.dir();
    settings.calib_tokens = static_cast<int64_t>(calib_tokens.size());
    settings.calib_hash = token_hash(calib_tokens);
    settings.kl_tokens = static_cast<int64_t>(kl_tokens.size());
    settings.kl_hash = token_hash(kl_tokens);
    settings.ctx = options.ctx > 0 ? options.ctx : std::min<int64_t>(model.config().max_position_embeddings, 512);
    settings.sample_rows = options.sample_rows;
    settings.seed = options.seed;
    if (m.has_settings() && !(m.settings() == settings))
        throw Error("sensitivity: measurements were taken with " + describe(m.settings()) + ", this run uses " +
                    describe(settings) + " (or other tokens); use a new measurements file");
    if (!m.has_settings()) m.set_settings(settings);

    std::vector<std::unique_ptr<Codec>> codecs;
    for (const auto& c : candidates) codecs.push_back(make_codec(c));
    std::vector<std::string> canon;
    for (const auto& c : codecs) canon.push_back(c->spec().to_string());

    // Plan: per layer, which candidates to quantize and which of those need a KL measurement.
    struct Work {
        std::size_t layer;
        std::vector<std::size_t> todo;  // candidate indices
        std::vector<bool> need_kl;
        bool hessian = false;
    };
    std::vector<Work> plan;
    const auto store = [&](SensitivityPoint p) {
        const std::string layer = p.layer, spec = p.spec;
        m.set(std::move(p));
        if (options.on_point) options.on_point(*m.layer(layer), *m.find(layer, spec));
    };
    for (std::size_t l : layers) {
        const auto& info = model.layers().at(l);
        m.add_layer({info.name, layer_kind_name(info.kind), info.block, info.out_features, info.in_features, -1, false});
        // Bits estimate (cheap) for each available candidate; unsupported shapes are recorded unavailable.
        std::vector<std::pair<double, std::size_t>> by_bits;
        for (std::size_t c = 0; c < codecs.size(); ++c) {
            const SensitivityPoint* have = m.find(info.name, canon[c]);
            if (have && !have->available) continue;
            try {
                by_bits.push_back({codecs[c]->estimate_bits(info.out_features, info.in_features).total_bits_per_weight, c});
            } catch (const Cancelled&) {
                throw;
            } catch (const Error& e) {
                SensitivityPoint p;
                p.layer = info.name;
                p.spec = canon[c];
                p.available = false;
                p.error = e.what();
                store(std::move(p));
                ++stats.unavailable;
            }
        }
        std::stable_sort(by_bits.begin(), by_bits.end());
        std::set<std::size_t> reference;  // candidates whose KL proxy mode measures
        if (!by_bits.empty()) {
            reference.insert(by_bits[(by_bits.size() - 1) / 2].second);
            if (options.proxy_points >= 2) reference.insert(by_bits.front().second);
        }
        Work w{l, {}, {}, false};
        for (const auto& [bits, c] : by_bits) {
            const SensitivityPoint* have = m.find(info.name, canon[c]);
            const bool want_kl = !options.proxy || reference.count(c);
            if (have && (have->has_kl || !want_kl)) {
                ++stats.reused;
                continue;
            }
            w.todo.push_back(c);
            w.need_kl.push_back(want_kl);
            w.hessian = w.hessian || codecs[c]->needs_hessian();
        }
        if (!w.todo.empty()) plan.push_back(std::move(w));
    }
    std::size_t total_units = 0, done_units = 0;
    for (const auto& w : plan) total_units += w.todo.size();

    // Walk order: block by block (lm_head, outside the blocks, after the last), so one calibration walk and
    // one KL probe move down the model together instead of a forward from the embeddings per capture and two
    // per KL measurement.
    const auto position_of = [&](std::size_t layer) {
        const int b = model.layers().at(layer).block;
        return b < 0 ? model.num_blocks() : b;
    };
    std::stable_sort(plan.begin(), plan.end(),
                     [&](const Work& a, const Work& b) { return position_of(a.layer) < position_of(b.layer); });
    bool any_kl = false;
    for (const auto& w : plan)
        for (bool k : w.need_kl) any_kl = any_kl || k;
    std::unique_ptr<BlockWalk> walk;
    std::unique_ptr<KlProbe> probe;
    if (!plan.empty()) {
        CaptureOptions co;
        co.ctx = settings.ctx;
        co.sample_rows = options.sample_rows;
        walk = std::make_unique<BlockWalk>(model, calib_tokens, co, options.hidden_memory_cap, options.spill_dir);
        if (any_kl) {
            EvalOptions eo;
            eo.ctx = settings.ctx;
            eo.batch = options.kl_batch;
            SubProgress sub(prog, 0.0, 0.0);
            probe = std::make_unique<KlProbe>(model, kl_tokens, eo, bos_id, options.hidden_memory_cap, options.spill_dir,
                                              &sub);
        }
    }
    std::size_t i = 0;
    while (i < plan.size()) {
        prog.check();
        const int position = position_of(plan[i].layer);
        const double f0 = total_units ? double(done_units) / double(total_units) : 0.0;
        SubProgress moving(prog, f0, f0);
        while (walk->position() < position) {
            walk->step({}, LlamaModel::Weights::Original, true, &moving);
            if (probe) probe->advance(&moving);
        }
        // A capture group: layers of this position whose Hessians fit max_stats_bytes (at least one).
        std::size_t j = i;
        int64_t bytes = 0;
        bool hessian = false;
        while (j < plan.size() && position_of(plan[j].layer) == position) {
            const int64_t cols = model.layers().at(plan[j].layer).in_features;
            const int64_t b = plan[j].hessian ? cols * cols * 4 : 0;
            if (j > i && bytes + b > options.max_stats_bytes) break;
            bytes += b;
            hessian = hessian || plan[j].hessian;
            ++j;
        }
        std::vector<std::size_t> group;
        for (std::size_t k = i; k < j; ++k) group.push_back(plan[k].layer);
        walk->set_hessian(hessian);
        auto captured = walk->step(group, LlamaModel::Weights::Original, false, &moving);
        ++stats.capture_passes;
        for (std::size_t k = i; k < j; ++k) {
            const auto& w = plan[k];
            const auto& info = model.layers().at(w.layer);
            CalibStats calib;
            {
                const auto& st = captured.at(w.layer);
                if (st.xtx.defined()) calib.hessian = st.hessian();
                calib.act_scale = st.abs_mean;
            }
            const at::Tensor sample = captured.at(w.layer).sample;
            captured.erase(w.layer);  // the layer's Hessian sum is not needed past here
            for (std::size_t t = 0; t < w.todo.size(); ++t) {
                prog.check();
                const std::size_t c = w.todo[t];
                const double fa = double(done_units) / double(total_units), fb = double(done_units + 1) / double(total_units);
                prog.report(fa, "sensitivity " + info.name + " " + canon[c]);
                const auto t0 = Clock::now();
                SensitivityPoint p;
                p.layer = info.name;
                p.spec = canon[c];
                QuantizeContext ctx{&calib, layer_seed(options.seed, info.name), nullptr};
                at::Tensor wq;
                QuantizedTensor q;
                try {
                    ++stats.quantize_calls;
                    q = codecs[c]->quantize(model.original_weight(w.layer), ctx);
                    wq = codecs[c]->dequantize(q);
                } catch (const Cancelled&) {
                    throw;
                } catch (const Error& e) {
                    p.available = false;
                    p.error = e.what();
                    store(std::move(p));
                    ++stats.unavailable;
                    ++done_units;
                    continue;
                }
                const LayerMetrics lm = compare_weights(model.original_weight(w.layer), wq, sample);
                p.output_rel_error = lm.output_rel_error;
                p.bits_per_weight = q.total_bits_per_weight();
                p.code_bits_per_weight = q.code_bits_per_weight();
                if (w.need_kl[t]) {
                    model.replace_weight(w.layer, wq);
                    RestoreGuard guard{model, w.layer};
                    SubProgress sub(prog, fa, fb);
                    const KlReport kl = probe->measure(&sub);
                    ++stats.kl_evals;
                    p.has_kl = true;
                    p.kl = kl.kl_mean;
                    p.kl_stderr = kl.kl_stderr;
                } else if (const SensitivityPoint* have = m.find(info.name, canon[c]); have && have->has_kl) {
                    p.has_kl = true, p.kl = have->kl, p.kl_stderr = have->kl_stderr;
                }
                p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
                store(std::move(p));
                ++done_units;
            }
        }
        i = j;
    }
    m.fit_proxy();
    prog.report(1.0, "sensitivity done");
    stats.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
    return stats;
}

const char* cost_source_name(CostSource s) {
    switch (s) {
        case CostSource::Kl: return "kl";
        case CostSource::Proxy: return "proxy";
        case CostSource::Auto: return "auto";
    }
    return "?";
}

CostSource cost_source_from_name(const std::string& s) {
    if (s == "kl") return CostSource::Kl;
    if (s == "proxy") return CostSource::Proxy;
    if (s == "auto") return CostSource::Auto;
    throw Error("cost: '" + s + "' is not one of kl, proxy, auto");
}

AllocationSpec to_allocation_spec(const Measurements& m, CostSource source) {
    AllocationSpec spec;
    std::vector<std::string> empty;
    for (const auto& l : m.layers()) {
        AllocLayer al;
        al.name = l.name;
        al.kind = l.kind;
        al.block = l.block;
        al.weights = l.weights();
        for (const auto* p : m.points_of(l.name)) {
            if (!p->available) continue;
            double cost;
            if (source == CostSource::Kl || (source == CostSource::Auto && p->has_kl)) {
                if (!p->has_kl) continue;
                cost = p->kl;
            } else {
                if (p->proxy_kl < 0) continue;
                cost = p->proxy_kl;
            }
            AllocCandidate c;
            c.spec = p->spec;
            c.bits_per_weight = p->bits_per_weight;
            c.cost = cost;
            // A part every layer with this setting shares is paid once by the allocator, not by each layer.
            const int64_t shared = make_codec(p->spec)->estimate_bits(l.out_features, l.in_features).shared_bits;
            if (shared > 0) {
                c.shared_key = p->spec;
                c.shared_bits = shared;
                c.bits_per_weight = std::max(0.0, p->bits_per_weight - double(shared) / double(l.weights()));
            }
            al.candidates.push_back(std::move(c));
        }
        if (al.candidates.empty()) empty.push_back(l.name);
        spec.layers.push_back(std::move(al));
    }
    if (!empty.empty()) {
        std::string names;
        for (const auto& n : empty) names += (names.empty() ? "'" : ", '") + n + "'";
        throw Error(std::string("measurements: no available candidate with a ") + cost_source_name(source) +
                    " cost for layer" + (empty.size() > 1 ? "s " : " ") + names);
    }
    if (spec.layers.empty()) throw Error("measurements: no layers");
    return spec;
}

}  // namespace quench
