// Every job kind (quantize, eval, export packed and GGUF, sensitivity, apply, qat) run once through quench-cli and
// once through the workbench's session on the real tiny model, with the same settings, each front end writing
// its own project file. Both runs are read back with core's reader and compared field by field: summary, every
// attribute, every table (columns, units, values, attributes), every array and every stored tensor's bytes.
// Only the fields listed in kExcluded may differ, each for the reason given there (and each must turn up, so
// the list stays honest). Small token counts and one block's layers keep it short.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "alloc/allocation.h"
#include "alloc/allocation_json.h"
#include "common/json_file.h"
#include "gui_test_support.h"
#include "io/run_store.h"
#include "job_queue.h"
#include "job_runner.h"
#include "support/cli.h"
#include "workbench_session.h"

using namespace quench::gui;

namespace {

constexpr int kCalibTokens = 1024;
constexpr int kEvalTokens = 512;
constexpr int kContext = 64;
const std::string kLayersGlob = "model.layers.0.*";
const std::string kTwoLayers = "model.layers.0.self_attn.q_proj,model.layers.0.mlp.down_proj";

// The fields that differ between two runs of the same job, and why they must. Keys: "summary:<field>",
// "attr:<name>", "table:<table>/column:<name>", "table:<table>/attr:<name>".
const std::map<std::string, const char*> kExcluded = {
    {"summary:id", "run ids follow each project's own sequence: the workbench records its PTQ init as a quantize "
                   "run of its own, quench-cli qat makes it inside the qat run"},
    {"summary:command_line", "what was typed (quench-cli ...) against the workbench's description of the job"},
    {"attr:command_line", "the same command line, as the run's attribute"},
    {"summary:started_utc", "wall-clock time"},
    {"summary:finished_utc", "wall-clock time"},
    {"summary:updated_utc", "wall-clock time"},
    {"attr:started_utc", "wall-clock time"},
    {"attr:finished_utc", "wall-clock time"},
    {"attr:updated_utc", "wall-clock time"},
    {"attr:allocation", "where the allocation came from: the file quench-cli apply read, the workbench's own solve"},
    {"table:layers/column:seconds", "time each layer's quantization took"},
    {"table:layers/attr:seconds", "time the whole quantization (or training) took"},
    {"table:kl/column:seconds", "time the evaluation took"},
    {"table:kl_ptq/column:seconds", "time the evaluation took"},
    {"table:rd/column:seconds", "time each sensitivity measurement took"},
};

std::string text(const quench::AttrValue& v) {
    std::ostringstream s;
    s.precision(17);
    std::visit([&](const auto& x) { s << x; }, v);
    return s.str();
}

bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool same(const quench::AttrValue& a, const quench::AttrValue& b) {
    if (a.index() != b.index()) return false;
    if (const auto* d = std::get_if<double>(&a)) return same(*d, std::get<double>(b));
    return a == b;
}

// Collects the differences between a CLI run and a GUI run, skipping the excluded fields (noting which turned up).
class RunDiff {
public:
    RunDiff(const std::string& kind, std::set<std::string>& used) : kind_(kind), used_(used) {}
    QStringList differences;
    int64_t compared = 0;  // values compared equal or found to differ: the comparison is not vacuous

    bool excluded(const std::string& key) {
        if (!kExcluded.count(key)) return false;
        used_.insert(key);
        return true;
    }
    void differ(const std::string& key, const std::string& cli, const std::string& gui) {
        ++compared;
        if (excluded(key)) return;
        differences << QString::fromStdString(kind_ + ": " + key + ": CLI " + cli + ", GUI " + gui);
    }
    void attrs(const std::string& prefix, const quench::Attrs& cli, const quench::Attrs& gui) {
        std::set<std::string> keys;
        for (const auto& [k, v] : cli) keys.insert(k);
        for (const auto& [k, v] : gui) keys.insert(k);
        for (const auto& k : keys) {
            const auto c = cli.find(k), g = gui.find(k);
            if (c == cli.end() || g == gui.end())
                differ(prefix + k, c == cli.end() ? "(none)" : text(c->second), g == gui.end() ? "(none)" : text(g->second));
            else if (!same(c->second, g->second))
                differ(prefix + k, text(c->second), text(g->second));
            else if (!excluded(prefix + k))  // equal this time: an excluded one is still a field the list names
                ++compared;
        }
    }
    void column(const std::string& key, const quench::Column& c, const quench::Column& g) {
        if (excluded(key)) return;
        if (c.units != g.units) differ(key + "/units", c.units, g.units);
        if (c.size() != g.size()) return differ(key + "/rows", std::to_string(c.size()), std::to_string(g.size()));
        if (c.values.index() != g.values.index()) return differ(key + "/type", "", "");
        for (std::size_t i = 0; i < c.size(); ++i) {
            std::string cv, gv;
            bool eq = true;
            if (const auto* d = std::get_if<std::vector<double>>(&c.values)) {
                const double a = (*d)[i], b = std::get<std::vector<double>>(g.values)[i];
                eq = same(a, b), cv = text(a), gv = text(b);
            } else if (const auto* n = std::get_if<std::vector<int64_t>>(&c.values)) {
                const int64_t a = (*n)[i], b = std::get<std::vector<int64_t>>(g.values)[i];
                eq = a == b, cv = std::to_string(a), gv = std::to_string(b);
            } else {
                cv = std::get<std::vector<std::string>>(c.values)[i], gv = std::get<std::vector<std::string>>(g.values)[i];
                eq = cv == gv;
            }
            if (!eq) return differ(key + " row " + std::to_string(i), cv, gv);
            ++compared;
        }
    }
    void table(const std::string& name, const quench::Table& c, const quench::Table& g) {
        const std::string key = "table:" + name;
        std::vector<std::string> cn, gn;
        for (const auto& col : c.columns) cn.push_back(col.name);
        for (const auto& col : g.columns) gn.push_back(col.name);
        if (cn != gn) return differ(key + "/columns", std::to_string(cn.size()), std::to_string(gn.size()));
        for (std::size_t i = 0; i < cn.size(); ++i) column(key + "/column:" + cn[i], c.columns[i], g.columns[i]);
        attrs(key + "/attr:", c.attrs, g.attrs);
    }
    void array(const std::string& name, const quench::Array& c, const quench::Array& g) {
        const std::string key = "array:" + name;
        if (c.shape != g.shape || c.single != g.single) return differ(key + "/shape", "", "");
        for (std::size_t i = 0; i < c.values.size(); ++i)
            if (!same(c.values[i], g.values[i])) return differ(key + "[" + std::to_string(i) + "]", text(c.values[i]), text(g.values[i]));
        compared += int64_t(c.values.size());
        attrs(key + "/attr:", c.attrs, g.attrs);
    }
    void tensor(const std::string& layer, const quench::StoredTensor& c, const quench::StoredTensor& g) {
        const std::string key = "tensor:" + layer;
        if (c.codec != g.codec || c.rows != g.rows || c.cols != g.cols || c.parts.size() != g.parts.size())
            return differ(key, c.codec, g.codec);
        for (std::size_t i = 0; i < c.parts.size(); ++i) {
            const auto &a = c.parts[i], &b = g.parts[i];
            if (a.name != b.name || a.role != b.role || a.dtype != b.dtype || a.shape != b.shape || a.bits != b.bits ||
                a.shared != b.shared || a.bytes != b.bytes)
                differ(key + "/part:" + a.name, "", "(differs)");
            else
                compared += int64_t(a.bytes.size());
        }
    }

private:
    std::string kind_;
    std::set<std::string>& used_;
};

template <class Map, class F>
void bothSides(RunDiff& d, const std::string& what, const Map& c, const Map& g, F compare) {
    std::set<std::string> names;
    for (const auto& [k, v] : c) names.insert(k);
    for (const auto& [k, v] : g) names.insert(k);
    for (const auto& n : names) {
        const auto a = c.find(n), b = g.find(n);
        if (a == c.end() || b == g.end())
            d.differ(what + ":" + n, a == c.end() ? "(none)" : "present", b == g.end() ? "(none)" : "present");
        else
            compare(n, a->second, b->second);
    }
}

}  // namespace

class TestRunParity : public QObject {
    Q_OBJECT

    QTemporaryDir tmp_;
    std::string cliProject_, guiProject_;
    std::set<std::string> usedExclusions_;
    QStringList differences_;

    static std::string model() { return test::modelDir().toStdString(); }
    static std::string calib() { return test::calibText().toStdString(); }
    static std::string eval() { return test::evalText().toStdString(); }

    // quench-cli with these arguments; its stderr on failure.
    static bool cli(const std::string& args) {
        const auto r = quench::test::run_cli(args + " -q");
        if (r.code != 0) qWarning("quench-cli %s: exit %d\n%s", args.c_str(), r.code, r.err.c_str());
        return r.code == 0;
    }

    static bool finished(JobRunner* job) {
        if (!job || !job->waitForEnd(120000)) return false;
        QCoreApplication::processEvents();  // the run's id arrives with the job's end
        if (job->state() != JobRunner::State::Finished) qWarning("job: %s", qPrintable(job->errorMessage()));
        return job->state() == JobRunner::State::Finished;
    }

    static std::string newestRun(const std::string& project) { return quench::RunStore::open(project).runs().back().id; }

    // Reads both runs with core's reader and collects every difference outside kExcluded.
    void compare(const char* kind, const std::string& cliId, const std::string& guiId) {
        const auto cs = quench::RunStore::open(cliProject_), gs = quench::RunStore::open(guiProject_);
        const quench::RunData c = cs.read(cliId), g = gs.read(guiId);
        RunDiff d(kind, usedExclusions_);
        if (c.summary.info.kind != kind) d.differ("summary:kind (expected " + std::string(kind) + ")", c.summary.info.kind, g.summary.info.kind);
        const auto field = [&](const char* name, const std::string& a, const std::string& b) {
            if (a != b) d.differ(std::string("summary:") + name, a, b);
            else if (!d.excluded(std::string("summary:") + name)) ++d.compared;
        };
        field("id", c.summary.id, g.summary.id);
        field("status", quench::run_status_name(c.summary.status), quench::run_status_name(g.summary.status));
        field("kind", c.summary.info.kind, g.summary.info.kind);
        field("command_line", c.summary.info.command_line, g.summary.info.command_line);
        field("seed", std::to_string(c.summary.info.seed), std::to_string(g.summary.info.seed));
        field("quench_version", c.summary.info.quench_version, g.summary.info.quench_version);
        field("git_hash", c.summary.info.git_hash, g.summary.info.git_hash);
        field("started_utc", c.summary.info.started_utc, g.summary.info.started_utc);
        field("finished_utc", c.summary.info.finished_utc, g.summary.info.finished_utc);
        field("updated_utc", c.summary.updated_utc, g.summary.updated_utc);
        field("message", c.summary.message, g.summary.message);
        field("in_sidecar", std::to_string(c.summary.in_sidecar), std::to_string(g.summary.in_sidecar));
        d.attrs("attr:", c.attrs, g.attrs);
        bothSides(d, "table", c.tables, g.tables, [&](const std::string& n, const auto& a, const auto& b) { d.table(n, a, b); });
        bothSides(d, "array", c.arrays, g.arrays, [&](const std::string& n, const auto& a, const auto& b) { d.array(n, a, b); });
        if (c.tensors != g.tensors)
            d.differ("tensors", std::to_string(c.tensors.size()) + " tensors", std::to_string(g.tensors.size()) + " tensors");
        else
            for (const auto& t : c.tensors) d.tensor(t, cs.read_tensor(cliId, t), gs.read_tensor(guiId, t));
        if (c.summary.status != quench::RunStatus::Complete) d.differences << QStringLiteral("%1: CLI run not complete").arg(QLatin1String(kind));
        qInfo("%s: %s vs %s, %lld values compared, %lld differences", kind, cliId.c_str(), guiId.c_str(),
              static_cast<long long>(d.compared), static_cast<long long>(d.differences.size()));
        QVERIFY2(d.compared > 100, kind);  // every run has its provenance tables at least
        differences_ << d.differences;
    }

private slots:
    void initTestCase() {
        test::isolateSettings();
        QVERIFY(tmp_.isValid());
        cliProject_ = tmp_.filePath(QStringLiteral("cli.h5")).toStdString();
        guiProject_ = tmp_.filePath(QStringLiteral("gui.h5")).toStdString();
    }

    void everyJobKindRecordsTheSameRun() {
        JobQueue queue;
        WorkbenchSession session(&queue);
        session.data().calibPath = test::calibText();
        session.data().evalPath = test::evalText();
        session.data().calibTokens = kCalibTokens;
        session.data().evalTokens = kEvalTokens;
        session.data().context = kContext;
        session.setProjectPath(QString::fromStdString(guiProject_));
        QVERIFY(finished(session.loadModel(test::modelDir())));
        const std::string data = " --calib " + calib() + " --calib-tokens " + std::to_string(kCalibTokens) + " --eval " +
                                 eval() + " --eval-tokens " + std::to_string(kEvalTokens) + " --ctx " + std::to_string(kContext);
        const auto block0 = session.layers().select_glob(kLayersGlob);
        const auto twoLayers = session.layers().select_glob(kTwoLayers);
        QCOMPARE(twoLayers.size(), std::size_t(2));

        // quantize
        QVERIFY(cli("quantize " + model() + " --codec rtn:b=4,g=32 --layers '" + kLayersGlob + "'" + data + " --out " + cliProject_));
        QVERIFY(finished(session.quantize(block0, QStringLiteral("rtn:b=4,g=32"))));
        compare("quantize", newestRun(cliProject_), session.lastRunId().toStdString());
        const std::string quantizeRun = cliProject_ + ":" + newestRun(cliProject_);

        // eval: the quantized model against its full precision
        QVERIFY(cli("eval " + quantizeRun + " --text " + eval() + " --max-tokens " + std::to_string(kEvalTokens) +
                    " --ctx " + std::to_string(kContext) + " --out " + cliProject_));
        QVERIFY(finished(session.evaluate()));
        compare("eval", newestRun(cliProject_), session.lastRunId().toStdString());

        // export, packed and GGUF, to the same paths (each front end replacing the other's files)
        const std::string packed = tmp_.filePath(QStringLiteral("packed")).toStdString();
        const std::string gguf = tmp_.filePath(QStringLiteral("model.gguf")).toStdString();
        QVERIFY(cli("export " + quantizeRun + " --format packed --out " + packed + " --replace --record " + cliProject_));
        ExportRequest request;
        request.format = ExportFormat::Packed;
        request.path = QString::fromStdString(packed);
        request.replace = true;
        QVERIFY(finished(session.exportModel(request)));
        compare("export", newestRun(cliProject_), session.lastRunId().toStdString());
        QVERIFY(cli("export " + quantizeRun + " --format gguf --out " + gguf + " --replace --record " + cliProject_));
        request.format = ExportFormat::Gguf;
        request.path = QString::fromStdString(gguf);
        QVERIFY(finished(session.exportModel(request)));
        compare("export", newestRun(cliProject_), session.lastRunId().toStdString());

        // sensitivity: two layers, two settings
        QVERIFY(cli("sensitivity " + model() + " --candidates 'rtn:b=2,g=32;rtn:b=4,g=32' --layers '" + kTwoLayers +
                    "' --calib " + calib() + " --calib-tokens " + std::to_string(kCalibTokens) + " --kl-text " + eval() +
                    " --kl-tokens " + std::to_string(kEvalTokens) + " --ctx " + std::to_string(kContext) + " --out " + cliProject_));
        QVERIFY(finished(session.measureSensitivity(twoLayers, {QStringLiteral("rtn:b=2,g=32"), QStringLiteral("rtn:b=4,g=32")})));
        compare("sensitivity", newestRun(cliProject_), session.lastRunId().toStdString());

        // apply: one allocation of those measurements, through both
        const std::string allocation = tmp_.filePath(QStringLiteral("allocation.json")).toStdString();
        QVERIFY(cli("allocate --measurements " + cliProject_ + ":" + newestRun(cliProject_) + " --budget 3.5bpw --save " + allocation));
        const quench::Allocation a = quench::read_json_file(allocation).at("allocation").get<quench::Allocation>();
        QVERIFY(cli("apply " + model() + " --allocation " + allocation + data + " --out " + cliProject_));
        QVERIFY(finished(session.applyAllocation(a)));
        compare("apply", newestRun(cliProject_), session.lastRunId().toStdString());

        // qat: the CLI makes its PTQ init inside the run; the workbench quantizes first, then trains
        QVERIFY(cli("qat " + model() + " --codec paretoq:b=2 --layers '" + kTwoLayers + "' --mode e2e --train " + calib() +
                    " --calib-tokens " + std::to_string(kCalibTokens) + " --tokens 2k --eval " + eval() + " --eval-tokens " +
                    std::to_string(kEvalTokens) + " --eval-ctx " + std::to_string(kContext) + " --ctx " +
                    std::to_string(kContext) + " --lr 1e-3 --scale-lr 1e-3 --out " + cliProject_));
        QVERIFY(finished(session.quantize(twoLayers, QStringLiteral("paretoq:b=2"))));
        QatRequest qat;
        qat.tokens = QStringLiteral("2k");
        qat.lr = 1e-3;
        qat.scaleLr = 1e-3;
        QVERIFY(finished(session.trainQat(qat)));
        compare("qat", newestRun(cliProject_), session.lastRunId().toStdString());

        // quantize calibrated on full-precision inputs: the Data panel's choice and --calib-inputs fp record
        // the same run (GPTQ, whose codes depend on the inputs)
        QVERIFY(cli("quantize " + model() + " --codec gptq:b=3,g=32 --calib-inputs fp --layers '" + kLayersGlob + "'" +
                    data + " --out " + cliProject_));
        session.data().calibOnQuantized = false;
        QVERIFY(finished(session.quantize(block0, QStringLiteral("gptq:b=3,g=32"))));
        session.data().calibOnQuantized = true;
        compare("quantize", newestRun(cliProject_), session.lastRunId().toStdString());

        QVERIFY2(differences_.isEmpty(), qPrintable(differences_.join(QLatin1Char('\n'))));
        for (const auto& [key, why] : kExcluded)
            QVERIFY2(usedExclusions_.count(key), qPrintable(QStringLiteral("exclusion %1 matches no field (%2): drop it")
                                                                .arg(QString::fromStdString(key), QLatin1String(why))));
    }
};

QTEST_MAIN(TestRunParity)
#include "test_run_parity.moc"
