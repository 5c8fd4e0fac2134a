// Checking an allocation problem and building its choice units: single layers and tied groups, each with the
// Pareto front of the settings it may take (hulls and sorted steps follow in allocation_hulls.cpp). Every
// contradiction is an error naming the layer and the constraint.
#include "alloc/allocation_problem.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <unordered_map>

#include "alloc/allocation_text.h"
#include "common/error.h"

namespace quench {

namespace {

using alloc_text::fail;
using alloc_text::group_text;
using alloc_text::num;
using alloc_text::quoted;
using alloc_text::range_text;

// Per layer at most 2^53 bits (a petabyte): sums over any real model stay exact in int64 and in double.
constexpr long double kMaxLayerBits = 9007199254740992.0L;

// A layer's storage is a whole number of bits; the 1e-6 absorbs decimal-to-binary noise (7/3 bpw x 3k).
int64_t whole_bits(const std::string& layer, int64_t weights, double bpw, double extra) {
    const long double x = static_cast<long double>(weights) * bpw + extra;
    if (x > kMaxLayerBits) fail("layer " + quoted(layer) + " has more than 2^53 bits");
    return static_cast<int64_t>(std::ceil(x - 1e-6L));
}

bool valid_range(const BitsRange& r) {
    return std::isfinite(r.min_bits_per_weight) && r.min_bits_per_weight >= 0 && !std::isnan(r.max_bits_per_weight) &&
           r.max_bits_per_weight >= r.min_bits_per_weight;
}

bool within(const BitsRange& r, double bpw) {
    const double tol = 1e-9 * std::max(1.0, std::abs(bpw));
    return bpw >= r.min_bits_per_weight - tol && bpw <= r.max_bits_per_weight + tol;
}

struct UnionFind {
    std::vector<int> parent;
    explicit UnionFind(int n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    int find(int x) {
        while (parent[x] != x) x = parent[x] = parent[parent[x]];
        return x;
    }
    void unite(int a, int b) {
        a = find(a), b = find(b);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);  // the root is the group's first layer
    }
};

}  // namespace

AllocationProblem::AllocationProblem(AllocationSpec spec, ProblemOptions options)
    : spec_(std::move(spec)), options_(options) {
    if (has_shared_parts(spec_)) {
        build_variants();
        return;
    }
    build_items();
    build_hulls();
    build_steps();
    build_uniform();
}

void AllocationProblem::build_uniform() {
    // A spec is a uniform setting when every item with a choice may take it; items without one keep theirs.
    std::map<std::string, std::vector<int>> option_of;  // spec -> per item option, -1 = not allowed there
    const int n = static_cast<int>(items_.size());
    for (int i = 0; i < n; ++i) {
        const Item& it = items_[i];
        const Option* o = &options_list_[it.first_option];
        for (const auto& [spec, bits] : item_specs_[i]) {
            auto& v = option_of.try_emplace(spec, std::vector<int>(n, -1)).first->second;
            int j = 0;  // the front option with the most bits not above the spec's: it costs no more
            while (j + 1 < it.n_options && o[j + 1].bits <= bits) ++j;
            v[i] = j;
        }
    }
    for (auto& [spec, v] : option_of) {
        bool ok = true;
        for (int i = 0; i < n && ok; ++i) {
            if (v[i] >= 0) continue;
            if (items_[i].n_options == 1) v[i] = 0;
            else ok = false;
        }
        if (!ok) continue;
        uniform_specs_.push_back(spec);
        uniform_option_.insert(uniform_option_.end(), v.begin(), v.end());
    }
    item_specs_.clear();
    item_specs_.shrink_to_fit();
}

bool AllocationProblem::uniform_floor(std::vector<int>& choice, int64_t bits) const {
    const size_t n = items_.size();
    auto cost_of = [&](auto option) {
        double c = 0;
        for (size_t i = 0; i < n; ++i) c += options_list_[items_[i].first_option + option(i)].cost;
        return c;
    };
    double best = cost_of([&](size_t i) { return choice[i]; });
    int best_u = -1;
    for (size_t u = 0; u < uniform_specs_.size(); ++u) {
        const int* opt = &uniform_option_[u * n];
        int64_t b = 0;
        for (size_t i = 0; i < n; ++i) b += options_list_[items_[i].first_option + opt[i]].bits;
        if (b > bits) continue;
        const double c = cost_of([&](size_t i) { return opt[i]; });
        if (c < best) best = c, best_u = static_cast<int>(u);
    }
    if (best_u < 0) return false;
    choice.assign(uniform_option_.begin() + best_u * n, uniform_option_.begin() + (best_u + 1) * n);
    return true;
}

void AllocationProblem::build_items() {
    const auto& layers = spec_.layers;
    const auto& cons = spec_.constraints;
    const int n = static_cast<int>(layers.size());
    if (n == 0) fail("the problem has no layers");
    if (options_.exact_steps < 1) fail("exact_steps " + std::to_string(options_.exact_steps) + " is below 1");
    const double xbpw = cons.excluded_bits_per_weight;
    if (!(std::isfinite(xbpw) && xbpw > 0)) fail("excluded_bits_per_weight " + num(xbpw) + " is not a positive number");

    // Layers and their candidates.
    std::unordered_map<std::string, int> index;
    std::vector<std::unordered_map<std::string, int>> cand_index(n);
    cand_bits_.assign(n, {});
    excluded_bits_.assign(n, 0);
    excluded_layer_.assign(n, 0);
    for (int l = 0; l < n; ++l) {
        const auto& L = layers[l];
        if (L.name.empty()) fail("layer " + std::to_string(l) + " has no name");
        if (!index.emplace(L.name, l).second) fail("layer " + quoted(L.name) + " is listed twice");
        if (L.weights <= 0) fail("layer " + quoted(L.name) + " has " + std::to_string(L.weights) + " weights");
        total_weights_ += L.weights;
        if (cons.excluded_kinds.count(L.kind)) {
            excluded_layer_[l] = 1;
            excluded_bits_[l] = whole_bits(L.name, L.weights, xbpw, 0);
            continue;
        }
        if (L.candidates.empty()) fail("layer " + quoted(L.name) + " has no candidates");
        for (int c = 0; c < static_cast<int>(L.candidates.size()); ++c) {
            const auto& C = L.candidates[c];
            const std::string who = "layer " + quoted(L.name) + ": candidate " + quoted(C.spec);
            if (C.spec.empty()) fail("layer " + quoted(L.name) + ": candidate " + std::to_string(c) + " has no spec");
            if (!cand_index[l].emplace(C.spec, c).second) fail(who + " is listed twice");
            if (!(std::isfinite(C.bits_per_weight) && C.bits_per_weight >= 0))
                fail(who + " has bits_per_weight " + num(C.bits_per_weight));
            if (!(std::isfinite(C.extra_bits) && C.extra_bits >= 0)) fail(who + " has extra_bits " + num(C.extra_bits));
            if (!std::isfinite(C.cost)) fail(who + " has cost " + num(C.cost));
            cand_bits_[l].push_back(whole_bits(L.name, L.weights, C.bits_per_weight, C.extra_bits));
        }
    }
    auto kind_excluded = [&](int l) {
        return "its kind " + quoted(layers[l].kind) + " is excluded (kept at " + num(xbpw) + " bits per weight)";
    };
    auto cand_bpw = [&](int l, int c) {
        return double(cand_bits_[l][c]) / double(layers[l].weights);
    };

    // Limits: the global range, replaced per layer where given.
    if (!valid_range(cons.limits)) fail("the bits-per-weight limits " + range_text(cons.limits) + " are not a range");
    std::vector<BitsRange> limit(n, cons.limits);
    for (const auto& [name, r] : cons.layer_limits) {
        const auto it = index.find(name);
        if (it == index.end()) fail("limits on unknown layer " + quoted(name));
        if (!valid_range(r)) fail("layer " + quoted(name) + ": the limits " + range_text(r) + " are not a range");
        if (excluded_layer_[it->second]) fail("layer " + quoted(name) + " has limits but " + kind_excluded(it->second));
        limit[it->second] = r;
    }

    // Pins.
    std::vector<int> pin(n, -1);
    pinned_layer_.assign(n, 0);
    for (const auto& [name, spec] : cons.pins) {
        const auto it = index.find(name);
        if (it == index.end()) fail("pin on unknown layer " + quoted(name));
        const int l = it->second;
        if (excluded_layer_[l]) fail("layer " + quoted(name) + " is pinned to " + quoted(spec) + " but " + kind_excluded(l));
        const auto c = cand_index[l].find(spec);
        if (c == cand_index[l].end())
            fail("layer " + quoted(name) + " is pinned to " + quoted(spec) + ", which is not one of its candidates");
        if (!within(limit[l], cand_bpw(l, c->second)))
            fail("layer " + quoted(name) + " is pinned to " + quoted(spec) + " (" + num(cand_bpw(l, c->second)) +
                 " bits per weight), outside its limits " + range_text(limit[l]));
        pin[l] = c->second;
        pinned_layer_[l] = 1;
    }

    // Which candidates each layer may take; a layer with none is a contradiction of its own.
    std::vector<std::vector<char>> allowed(n);
    for (int l = 0; l < n; ++l) {
        if (excluded_layer_[l]) continue;
        const int nc = static_cast<int>(layers[l].candidates.size());
        allowed[l].assign(nc, 0);
        bool any = false;
        double lo = INFINITY, hi = 0;
        for (int c = 0; c < nc; ++c) {
            allowed[l][c] = within(limit[l], cand_bpw(l, c)) && (pin[l] < 0 || pin[l] == c);
            any = any || allowed[l][c];
            lo = std::min(lo, cand_bpw(l, c)), hi = std::max(hi, cand_bpw(l, c));
        }
        if (!any)
            fail("layer " + quoted(layers[l].name) + " has no candidate within its limits " + range_text(limit[l]) +
                 " (its candidates span " + num(lo) + " to " + num(hi) + ")");
    }

    // Tied groups; groups that share a layer are one group (ties are transitive).
    UnionFind uf(n);
    for (const auto& group : cons.tied) {
        int first = -1;
        for (const auto& name : group) {
            const auto it = index.find(name);
            if (it == index.end()) fail("tied group " + group_text(group) + " names unknown layer " + quoted(name));
            if (first < 0) first = it->second;
            uf.unite(first, it->second);
        }
    }
    std::vector<std::vector<int>> groups;
    std::vector<int> group_at(n, -1);
    for (int l = 0; l < n; ++l) {
        const int r = uf.find(l);
        if (group_at[r] < 0) group_at[r] = static_cast<int>(groups.size()), groups.emplace_back();
        groups[group_at[r]].push_back(l);
    }

    item_specs_.assign(groups.size(), {});
    item_of_layer_.assign(n, -1);
    member_pos_of_layer_.assign(n, -1);
    group_of_layer_.assign(n, -1);
    int tied_id = 0;
    for (const auto& ms : groups) {
        std::vector<std::string> names;
        for (int m : ms) names.push_back(layers[m].name);
        const std::string gtext = "tied group " + group_text(names);
        Item it;
        it.first_member = static_cast<int>(members_.size());
        it.n_members = static_cast<int>(ms.size());
        it.first_option = static_cast<int>(options_list_.size());
        it.first_cand = static_cast<int>(option_cands_.size());
        const int item_id = static_cast<int>(items_.size());
        for (int k = 0; k < it.n_members; ++k) {
            members_.push_back(ms[k]);
            item_of_layer_[ms[k]] = item_id;
            member_pos_of_layer_[ms[k]] = k;
            if (ms.size() > 1) group_of_layer_[ms[k]] = tied_id;
        }
        if (ms.size() > 1) ++tied_id;

        const auto n_excl = std::count_if(ms.begin(), ms.end(), [&](int m) { return excluded_layer_[m] != 0; });
        if (n_excl > 0 && n_excl < static_cast<long>(ms.size())) {
            const int ex = *std::find_if(ms.begin(), ms.end(), [&](int m) { return excluded_layer_[m] != 0; });
            const int q = *std::find_if(ms.begin(), ms.end(), [&](int m) { return excluded_layer_[m] == 0; });
            fail(gtext + " ties layer " + quoted(layers[ex].name) + ", whose kind " + quoted(layers[ex].kind) +
                 " is excluded, to quantized layer " + quoted(layers[q].name));
        }
        if (n_excl > 0) {  // full precision: one option, no candidate
            Option o;
            for (int m : ms) o.bits += excluded_bits_[m], option_cands_.push_back(-1);
            options_list_.push_back(o);
            it.n_options = 1;
            it.min_bits = o.bits;
            items_.push_back(std::move(it));
            continue;
        }

        // A pin on one member pins the group; two different pins contradict each other.
        int pinned_by = -1;
        for (int m : ms) {
            if (pin[m] < 0) continue;
            if (pinned_by < 0) {
                pinned_by = m;
            } else if (layers[m].candidates[pin[m]].spec != layers[pinned_by].candidates[pin[pinned_by]].spec) {
                fail(gtext + ": layer " + quoted(layers[pinned_by].name) + " is pinned to " +
                     quoted(layers[pinned_by].candidates[pin[pinned_by]].spec) + " but layer " + quoted(layers[m].name) +
                     " to " + quoted(layers[m].candidates[pin[m]].spec));
            }
        }

        // The group's settings: specs every member has and may take; bits and cost are the members' sums.
        struct Raw {
            int64_t bits;
            double cost;
            int order;
            std::vector<int> cands;
        };
        std::vector<Raw> raw;
        const auto& lead = layers[ms[0]].candidates;
        for (int c0 = 0; c0 < static_cast<int>(lead.size()); ++c0) {
            Raw r{0, 0, c0, {}};
            bool ok = true;
            for (int m : ms) {
                const auto f = cand_index[m].find(lead[c0].spec);
                if (f == cand_index[m].end() || !allowed[m][f->second]) {
                    ok = false;
                    break;
                }
                r.bits += cand_bits_[m][f->second];
                r.cost += layers[m].candidates[f->second].cost;
                r.cands.push_back(f->second);
            }
            if (ok) raw.push_back(std::move(r));
        }
        if (raw.empty()) {
            if (pinned_by >= 0) {
                const std::string& ps = layers[pinned_by].candidates[pin[pinned_by]].spec;
                for (int m : ms) {
                    const auto f = cand_index[m].find(ps);
                    if (f == cand_index[m].end())
                        fail(gtext + ": layer " + quoted(layers[pinned_by].name) + " is pinned to " + quoted(ps) +
                             ", which layer " + quoted(layers[m].name) + " does not have");
                    if (!allowed[m][f->second])
                        fail(gtext + ": layer " + quoted(layers[pinned_by].name) + " is pinned to " + quoted(ps) + " (" +
                             num(cand_bpw(m, f->second)) + " bits per weight for layer " + quoted(layers[m].name) +
                             "), outside that layer's limits " + range_text(limit[m]));
                }
            }
            fail(gtext + " has no candidate common to all its members within their limits");
        }
        for (const auto& r : raw) item_specs_[item_id].emplace_back(lead[r.order].spec, r.bits);

        // Keep the Pareto front: by bits ascending, each kept option strictly cheaper than every smaller one.
        std::sort(raw.begin(), raw.end(), [](const Raw& a, const Raw& b) {
            if (a.bits != b.bits) return a.bits < b.bits;
            if (a.cost != b.cost) return a.cost < b.cost;
            return a.order < b.order;
        });
        double best = INFINITY;
        for (const auto& r : raw) {
            if (!(r.cost < best)) continue;
            best = r.cost;
            options_list_.push_back({r.bits, r.cost, 0, true});
            option_cands_.insert(option_cands_.end(), r.cands.begin(), r.cands.end());
        }
        it.n_options = static_cast<int>(options_list_.size()) - it.first_option;
        it.min_bits = options_list_[it.first_option].bits;

        // How much the constraints raised this unit's least bits, and which one did, for the infeasible-budget
        // message.
        int64_t free_min = 0;
        for (int m : ms) free_min += *std::min_element(cand_bits_[m].begin(), cand_bits_[m].end());
        it.raised_bits = it.min_bits - free_min;
        if (it.raised_bits > 0) {
            if (pinned_by >= 0) {
                it.raised_by = "layer " + quoted(layers[pinned_by].name) + " pinned to " +
                               quoted(layers[pinned_by].candidates[pin[pinned_by]].spec);
            } else {
                for (int m : ms) {
                    const auto least = std::min_element(cand_bits_[m].begin(), cand_bits_[m].end()) - cand_bits_[m].begin();
                    if (!allowed[m][least]) {
                        it.raised_by = "the limits " + range_text(limit[m]) + " of layer " + quoted(layers[m].name);
                        break;
                    }
                }
                if (it.raised_by.empty()) it.raised_by = gtext;
            }
        }
        items_.push_back(std::move(it));
    }
}

}  // namespace quench
