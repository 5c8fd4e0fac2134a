// quench-cli sensitivity MODEL --candidates 'SPEC;SPEC' [--candidate SPEC]... --layers GLOB --calib FILE
// [--calib-tokens N] [--kl-tokens N] [--proxy] [--measurements FILE.json] [--out FILE.h5]: per layer and
// candidate setting, bits per weight, output error and the model KL with only that layer quantized. With
// --measurements (a JSON file, read when it exists and written back, or a sensitivity run FILE.h5[:RUN]) only
// missing pairs are measured; --out records the whole set as a sensitivity run.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "jobs/sensitivity.h"
#include "analysis/text_data.h"
#include "commands.h"
#include "common/error.h"
#include "io/model_loading.h"
#include "jobs/alloc_records.h"
#include "jobs/recorded_jobs.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "output.h"
#include "run_recording.h"
#include "quant/codec_spec.h"

namespace quench::cli {
namespace {

struct SensitivityOpts {
    std::string model, candidates, layers = "model.layers.*", calib, kl_text, measurements, out;
    std::vector<std::string> candidate;
    int64_t calib_tokens = 4096, kl_tokens = 2048, ctx = 0, sample_rows = 256;
    int proxy_points = 2;
    uint64_t seed = 0;
    bool proxy = false;
};

// A JSON measurements file is a cache the run extends; a project-file run is history and stays as it is.
bool save_back(const SensitivityOpts& o) { return !o.measurements.empty() && !is_run_ref(o.measurements); }

std::string fmt_opt(double v, bool have, int precision) { return have ? fmt_num(v, precision) : "-"; }

void sensitivity(const SensitivityOpts& o, const GlobalOptions& g, ProgressSink& progress, RunWriter* run,
                 Measurements& m) {
    std::vector<std::string> cands;
    if (!o.candidates.empty()) cands = parse_candidate_list(o.candidates);
    for (const auto& c : o.candidate) {
        const std::string canon = CodecSpec::parse(c).to_string();
        if (std::find(cands.begin(), cands.end(), canon) == cands.end()) cands.push_back(canon);
    }
    if (cands.empty()) throw Error("sensitivity: give candidate specs with --candidates 'A;B' or --candidate A");
    auto model = load_model(o.model, &progress);
    auto tok = load_tokenizer(o.model);
    const auto layers = model->layers().select_glob(o.layers);
    SensitivityJobOptions so;
    so.layers = layers;
    so.candidates = cands;
    so.calib = {o.calib, o.calib_tokens};
    so.kl = {o.kl_text, o.kl_tokens};
    so.sensitivity.ctx = o.ctx;
    so.sensitivity.sample_rows = o.sample_rows;
    so.sensitivity.proxy = o.proxy;
    so.sensitivity.proxy_points = o.proxy_points;
    so.sensitivity.seed = o.seed;
    SensitivityStats st;
    try {
        st = sensitivity_job(*model, *tok, so, m, &progress, run);
    } catch (const Cancelled&) {
        if (save_back(o)) m.save(o.measurements);  // keep the finished pairs
        throw;
    }
    if (save_back(o)) m.save(o.measurements);
    // Only the requested layers x candidates are shown (the file may hold more).
    std::vector<std::string> names;
    for (std::size_t l : layers) names.push_back(model->layers().at(l).name);
    if (g.json) {
        nlohmann::json j = {{"model", o.model},
                            {"candidates", cands},
                            {"quantize_calls", st.quantize_calls},
                            {"kl_evals", st.kl_evals},
                            {"reused", st.reused},
                            {"unavailable", st.unavailable},
                            {"seconds", st.seconds},
                            {"points", nlohmann::json::array()}};
        if (std::isfinite(m.proxy_spearman())) j["proxy_spearman"] = m.proxy_spearman();
        j["proxy_points"] = m.proxy_points();
        for (const auto& n : names)
            for (const auto& c : cands) {
                const auto* p = m.find(n, c);
                if (!p) continue;
                nlohmann::json jp = {{"layer", n}, {"spec", c}, {"available", p->available}};
                if (!p->available) {
                    jp["error"] = p->error;
                } else {
                    jp["total_bpw"] = p->bits_per_weight;
                    jp["output_rel_error"] = p->output_rel_error;
                    if (p->has_kl) jp["kl"] = p->kl;
                    if (p->proxy_kl >= 0) jp["proxy_kl"] = p->proxy_kl;
                }
                j["points"].push_back(jp);
            }
        std::cout << j.dump(2) << "\n";
        return;
    }
    Table t({"layer", "spec", "total bpw", "out rel err", "KL (nats)", "proxy KL"});
    std::string notes;
    for (const auto& n : names)
        for (const auto& c : cands) {
            const auto* p = m.find(n, c);
            if (!p) continue;
            if (!p->available) {
                t.add({n, c, "-", "-", "unavailable", "-"});
                notes += "unavailable: " + n + " " + c + ": " + p->error + "\n";
                continue;
            }
            t.add({n, c, fmt_num(p->bits_per_weight, 3), fmt_num(p->output_rel_error, 5), fmt_opt(p->kl, p->has_kl, 6),
                   fmt_opt(p->proxy_kl, p->proxy_kl >= 0, 6)});
        }
    std::cout << names.size() << " layers x " << cands.size() << " candidates: " << st.quantize_calls
              << " quantized, " << st.kl_evals << " KL evaluations, " << st.reused << " reused, " << st.unavailable
              << " unavailable, " << fmt_num(st.seconds, 2) << " s\n\n"
              << t.render() << (notes.empty() ? "" : "\n" + notes);
    std::cout << "\nproxy (output error x per-layer factor) vs KL, held out: ";
    if (std::isfinite(m.proxy_spearman()))
        std::cout << "Spearman " << fmt_num(m.proxy_spearman(), 3) << " over " << m.proxy_points() << " points\n";
    else
        std::cout << "too few measured points\n";
}

}  // namespace

Command add_sensitivity_command(CLI::App& app, const GlobalOptions& g) {
    auto* sub = app.add_subcommand("sensitivity",
                                   "Per layer and candidate setting: bits, output error and model KL with only that layer quantized");
    auto o = std::make_shared<SensitivityOpts>();
    sub->add_option("model", o->model, "HF model directory")->required();
    sub->add_option("--candidates", o->candidates, "Codec specs separated by ';' (specs contain commas)");
    sub->add_option("--candidate", o->candidate, "One codec spec; repeatable");
    sub->add_option("--layers", o->layers, "Layer globs, comma-separated (default: every block's linear layers)");
    sub->add_option("--calib", o->calib, "Calibration text (capture pass; also the KL sample unless --kl-text)")->required();
    sub->add_option("--kl-text", o->kl_text, "Text for the KL sample (default: the calibration text)");
    sub->add_option("--calib-tokens", o->calib_tokens, "Calibration tokens to capture")->check(CLI::PositiveNumber);
    sub->add_option("--kl-tokens", o->kl_tokens, "Tokens in the fixed KL sample")->check(CLI::PositiveNumber);
    sub->add_option("--ctx", o->ctx, "Window length (default: min(model max, 512))")->check(CLI::NonNegativeNumber);
    sub->add_option("--sample-rows", o->sample_rows, "Calibration rows per layer for the output error")->check(CLI::PositiveNumber);
    sub->add_flag("--proxy", o->proxy, "Measure KL only for the median- and fewest-bits candidate per layer; predict the rest");
    sub->add_option("--proxy-points", o->proxy_points, "With --proxy: 1 = median-bits candidate only, 2 = also the fewest bits")
        ->check(CLI::Range(1, 2));
    sub->add_option("--seed", o->seed, "Seed for every random choice");
    sub->add_option("--measurements", o->measurements,
                    "Earlier measurements to extend: a JSON file (read when it exists, written back) or FILE.h5[:RUN]");
    sub->add_option("--out", o->out, "Project file (.h5) to record the run in; created when absent");
    return {sub, [o, &g] {
                // Earlier measurements: a JSON cache (written back) or a sensitivity run of a project file.
                Measurements m;
                if (!o->measurements.empty() && is_run_ref(o->measurements))
                    m = read_measurements(read_run_ref(o->measurements, "sensitivity"));
                else if (!o->measurements.empty() && std::filesystem::exists(o->measurements))
                    m = Measurements::load(o->measurements);
                StderrProgress progress(g.quiet || g.json);
                run_recorded(o->out, kSensitivityRun, o->seed, g, [&](RunWriter* run) { sensitivity(*o, g, progress, run, m); });
            }};
}

}  // namespace quench::cli
