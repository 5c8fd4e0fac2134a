#include "run_comparison.h"

#include <QObject>

#include <map>
#include <variant>

#include "analysis/model_eval.h"
#include "jobs/run_records.h"
#include "io/run_store.h"
#include "jobs/model_quantizer.h"

namespace quench::gui {

namespace {

QString q(const std::string& s) { return QString::fromStdString(s); }

RunView viewOf(const QString& file, const RunSummary& s) {
    RunView v;
    v.file = file;
    v.id = q(s.id);
    v.kind = q(s.info.kind);
    v.status = QString::fromLatin1(run_status_name(s.status));
    v.started = q(s.info.started_utc);
    v.commandLine = q(s.info.command_line);
    v.message = q(s.message);
    return v;
}

}  // namespace

std::vector<RunView> listRuns(const QString& file) {
    const auto store = RunStore::open(file.toStdString());
    std::vector<RunView> out;
    for (const auto& s : store.runs()) {
        RunView v = viewOf(file, s);
        if (s.status == RunStatus::Complete) {
            // total_bpw is the number most worth seeing in the list; one short read per run.
            const RunData d = store.read(s.id);
            if (auto it = d.attrs.find("total_bpw"); it != d.attrs.end() && std::holds_alternative<double>(it->second))
                v.totalBpw = std::get<double>(it->second);
        }
        out.push_back(std::move(v));
    }
    return out;
}

RunView loadRun(const QString& file, const QString& id) {
    const auto store = RunStore::open(file.toStdString());
    const RunData d = store.read(id.toStdString());
    RunView v = viewOf(file, d.summary);
    if (auto it = d.attrs.find("total_bpw"); it != d.attrs.end() && std::holds_alternative<double>(it->second))
        v.totalBpw = std::get<double>(it->second);
    if (d.has_table("layers")) {
        for (const auto& r : read_layer_results(d)) {
            RunLayerSummary l;
            l.layer = q(r.name);
            l.spec = q(r.spec.to_string());
            l.bitsPerWeight = r.metrics.total_bits_per_weight;
            l.relError = r.metrics.rel_fro_error;
            l.sqnrDb = r.metrics.sqnr_db;
            l.outputRelError = r.metrics.output_rel_error;
            v.layers.push_back(l);
        }
    }
    if (d.has_table("kl")) {
        const KlReport kl = read_kl_report(d);
        v.klMean = kl.kl_mean;
        v.pplRatio = kl.ppl_ratio;
        v.protocol = protocolView(kl.protocol);
        // The text the report scored: the run's "eval" data row (quench-cli and the window both record it).
        if (d.has_table("data"))
            for (const auto& p : read_data_provenance(d))
                if (p.role == "eval") {
                    v.protocol.file = q(p.file.path);
                    v.protocol.sha256 = q(p.file.sha256);
                }
    }
    return v;
}

QString klComparabilityWarning(const RunView& a, const RunView& b) {
    if (a.klMean < 0 || b.klMean < 0) return {};
    const QString diff = protocolDifference(a.protocol, b.protocol);
    return diff.isEmpty() ? QString() : QObject::tr("KL not comparable: %1").arg(diff);
}

std::vector<LayerDelta> compareRuns(const RunView& a, const RunView& b) {
    std::vector<LayerDelta> out;
    std::map<QString, std::size_t> at;
    for (const auto& l : a.layers) {
        at[l.layer] = out.size();
        LayerDelta d;
        d.layer = l.layer;
        d.inA = true;
        d.a = l;
        out.push_back(d);
    }
    for (const auto& l : b.layers) {
        auto it = at.find(l.layer);
        if (it == at.end()) {
            LayerDelta d;
            d.layer = l.layer;
            d.inB = true;
            d.b = l;
            out.push_back(d);
        } else {
            out[it->second].inB = true;
            out[it->second].b = l;
        }
    }
    return out;
}

}  // namespace quench::gui
