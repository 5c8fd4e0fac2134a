// The HDF5 run store: values round-trip exactly, runs get stable ids and never move, a run in progress is
// visible to readers and survives its writer being killed as "incomplete", and bad files, read-only
// directories and full disks fail with one clear line while earlier runs stay intact. HDF5's C API and
// /usr/bin/h5dump serve as independent readers.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <thread>

#include "common/error.h"
#include "io/run_store.h"
#include "io/sha256.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"

using namespace quench;
using quench::test::contains;
using quench::test::entries;
using quench::test::error_of;
using quench::test::read_bytes;
using quench::test::ScratchDir;
namespace fs = std::filesystem;

namespace {

RunInfo test_info(const std::string& kind = "quantize") {
    RunInfo i;
    i.kind = kind;
    i.command_line = "quench-cli quantize model --codec 'rtn:b=4,g=128,sym'";
    i.seed = 42;
    i.quench_version = "9.8.7";
    i.git_hash = "0123abcd-dirty";
    return i;
}

Table sample_table(int k) {
    Table t;
    t.add("x", std::vector<double>{1.5 * k, -2.25, 1e-300, 3.0e10})
        .add("n", std::vector<int64_t>{k, -1, int64_t(1) << 60, 0}, "tokens")
        .add("name", std::vector<std::string>{"a", "naïve ünïcode – ok", "", "model.layers.0.mlp"});
    t.attrs = {{"budget", 2.5}, {"note", std::string("k=" + std::to_string(k))}, {"count", int64_t(k)}};
    return t;
}

void expect_same(const Table& a, const Table& b) {
    ASSERT_EQ(a.columns.size(), b.columns.size());
    for (std::size_t i = 0; i < a.columns.size(); ++i) {
        EXPECT_EQ(a.columns[i].name, b.columns[i].name);
        EXPECT_EQ(a.columns[i].values, b.columns[i].values) << a.columns[i].name;
        EXPECT_EQ(a.columns[i].units, b.columns[i].units) << a.columns[i].name;
    }
    EXPECT_EQ(a.attrs, b.attrs);
}

// A complete run with one table and one array; returns its id.
std::string add_complete_run(const RunStore& store, int k) {
    RunWriter w = store.begin_run(test_info());
    w.write_table("t", sample_table(k));
    w.write_array("curve", std::vector<double>{double(k), 0.5, -0.25}, {}, {{"units", std::string("nats")}});
    w.finish();
    return w.id();
}

std::vector<std::string> ids_of(const std::vector<RunSummary>& runs) {
    std::vector<std::string> ids;
    for (const auto& r : runs) ids.push_back(r.id);
    return ids;
}

const RunSummary& summary(const std::vector<RunSummary>& runs, const std::string& id) {
    for (const auto& r : runs)
        if (r.id == id) return r;
    throw std::runtime_error("no summary for " + id);
}

std::string shell(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

// Runs fn in a forked child (for per-process limits and privileges); returns its exit code and what it said.
struct ChildResult {
    int code = -1;
    std::string said;
};
ChildResult in_child(const std::function<int(std::string&)>& fn) {
    int fds[2];
    if (::pipe(fds) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        std::string said;
        int rc = 99;
        try {
            rc = fn(said);
        } catch (const std::exception& e) {
            said += std::string("uncaught: ") + e.what();
            rc = 98;
        }
        if (::write(fds[1], said.data(), said.size()) < 0) rc = 97;
        ::_exit(rc);
    }
    ::close(fds[1]);
    ChildResult r;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) r.said.append(buf, std::size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return r;
}

void limit_file_size(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of being killed
    const rlimit lim{bytes, bytes};
    ::setrlimit(RLIMIT_FSIZE, &lim);
}

}  // namespace

TEST(RunStore, CreatesAnEmptyVersionedProject) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    EXPECT_TRUE(store.runs().empty());
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"study.h5"});  // no temporary left behind
    // Read the root attribute with HDF5 itself.
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    int64_t version = 0;
    const hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    ASSERT_GE(a, 0);
    ASSERT_GE(H5Aread(a, H5T_NATIVE_INT64, &version), 0);
    H5Aclose(a);
    EXPECT_EQ(H5Lexists(f, "runs", H5P_DEFAULT), 1);
    H5Fclose(f);
    EXPECT_EQ(version, kRunStoreSchemaVersion);
    // Opening again keeps the file as it is.
    const std::string bytes = read_bytes(path);
    RunStore::create_or_open(path);
    EXPECT_EQ(read_bytes(path), bytes);
}

TEST(RunStore, RunRoundTripsExactly) {
    ScratchDir dir;
    const RunStore store = RunStore::create_or_open(dir.file("study.h5"));
    RunInfo info = test_info();
    info.seed = 18446744073709551615ull;  // the largest seed survives
    RunWriter w = store.begin_run(info);
    EXPECT_EQ(w.id(), "run-0001");
    EXPECT_EQ(w.sidecar_path(), dir.file("study.h5.d/run-0001.partial.h5"));
    w.set_attrs({{"budget_bits", 3.25}, {"layers", int64_t(30)}, {"note", std::string("größe ✓")}});
    w.write_table("t", sample_table(7));
    std::vector<float> big(100000);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::sin(0.001f * float(i)) * 1e-3f + float(i);
    w.write_array("kl_per_token", big, {}, {{"first_scored_token", int64_t(1)}});
    w.write_array("grid", std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
    w.finish();
    EXPECT_TRUE(w.committed());

    const RunData run = store.read("run-0001");
    EXPECT_EQ(run.summary.status, RunStatus::Complete);
    EXPECT_FALSE(run.summary.in_sidecar);
    EXPECT_EQ(run.summary.info.kind, "quantize");
    EXPECT_EQ(run.summary.info.command_line, info.command_line);
    EXPECT_EQ(run.summary.info.seed, info.seed);
    EXPECT_EQ(run.summary.info.quench_version, "9.8.7");
    EXPECT_EQ(run.summary.info.git_hash, "0123abcd-dirty");
    const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)");
    EXPECT_TRUE(std::regex_match(run.summary.info.started_utc, iso)) << run.summary.info.started_utc;
    EXPECT_TRUE(std::regex_match(run.summary.info.finished_utc, iso)) << run.summary.info.finished_utc;
    EXPECT_LE(run.summary.info.started_utc, run.summary.info.finished_utc);
    EXPECT_EQ(std::get<double>(run.attr("budget_bits")), 3.25);
    EXPECT_EQ(std::get<int64_t>(run.attr("layers")), 30);
    EXPECT_EQ(std::get<std::string>(run.attr("note")), "größe ✓");
    EXPECT_EQ(std::get<std::string>(run.attr("seed")), "18446744073709551615");  // beyond int64: exact text
    expect_same(run.table("t"), sample_table(7));
    EXPECT_EQ(run.table("t").rows(), 4u);
    const Array& a = run.array("kl_per_token");
    EXPECT_TRUE(a.single);
    EXPECT_EQ(a.shape, std::vector<int64_t>{100000});
    EXPECT_EQ(std::vector<float>(a.values.begin(), a.values.end()), big);
    EXPECT_EQ(std::get<int64_t>(a.attrs.at("first_scored_token")), 1);
    const Array& g = run.array("grid");
    EXPECT_FALSE(g.single);
    EXPECT_EQ(g.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(g.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
    // The sidecar and its lock are gone; only the project lock stays.
    EXPECT_EQ(entries(dir.path() / "study.h5.d"), std::vector<std::string>{"project.lock"});
}

TEST(RunStore, IdsAreSequentialAndEarlierRunsNeverMove) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    EXPECT_EQ(add_complete_run(store, 1), "run-0001");
    // Where run-0001's column "x" lies in the file, and its bytes there, read with HDF5 itself.
    const auto locate = [&] {
        const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        const hid_t d = H5Dopen2(f, "/runs/run-0001/tables/t/x", H5P_DEFAULT);
        const haddr_t off = H5Dget_offset(d);
        const hsize_t size = H5Dget_storage_size(d);
        H5Dclose(d);
        H5Fclose(f);
        return std::make_pair(off, size);
    };
    const auto [offset, size] = locate();
    ASSERT_NE(offset, HADDR_UNDEF);
    ASSERT_EQ(size, 4 * sizeof(double));
    const std::string before = read_bytes(path).substr(offset, size);
    EXPECT_EQ(add_complete_run(store, 2), "run-0002");
    EXPECT_EQ(add_complete_run(store, 3), "run-0003");
    EXPECT_EQ(locate(), std::make_pair(offset, size));
    EXPECT_EQ(read_bytes(path).substr(offset, size), before);
    EXPECT_EQ(ids_of(store.runs()), (std::vector<std::string>{"run-0001", "run-0002", "run-0003"}));
    for (int k = 1; k <= 3; ++k) expect_same(store.read("run-000" + std::to_string(k)).table("t"), sample_table(k));
    // A second handle on the same file (another process would do the same) continues the numbering.
    EXPECT_EQ(add_complete_run(RunStore::open(path), 4), "run-0004");
}

TEST(RunStore, RunInProgressIsVisibleThenIncompleteWhenItsWriterGoes) {
    ScratchDir dir;
    const RunStore store = RunStore::create_or_open(dir.file("study.h5"));
    add_complete_run(store, 1);
    {
        RunWriter w = store.begin_run(test_info("qat"));
        w.write_table("curve", sample_table(5));
        w.set_attr("progress", 0.5);
        const auto runs = store.runs();
        ASSERT_EQ(ids_of(runs), (std::vector<std::string>{"run-0001", "run-0002"}));
        EXPECT_EQ(summary(runs, "run-0002").status, RunStatus::Running);
        EXPECT_TRUE(summary(runs, "run-0002").in_sidecar);
        EXPECT_EQ(summary(runs, "run-0002").info.kind, "qat");
        EXPECT_TRUE(std::regex_match(summary(runs, "run-0002").updated_utc, std::regex(R"(\d{4}-.*Z)")));
        const RunData live = store.read("run-0002");
        EXPECT_EQ(live.summary.status, RunStatus::Running);
        expect_same(live.table("curve"), sample_table(5));
        EXPECT_EQ(std::get<double>(live.attr("progress")), 0.5);
        // The project file itself does not hold the run yet.
        EXPECT_EQ(RunStore::open(store.path()).runs().size(), 2u);
    }  // no finish(): the writer goes away
    const auto runs = store.runs();
    EXPECT_EQ(summary(runs, "run-0002").status, RunStatus::Incomplete);
    EXPECT_TRUE(contains(summary(runs, "run-0002").message, "run-0002.partial.h5")) << summary(runs, "run-0002").message;
    EXPECT_EQ(store.read("run-0002").summary.status, RunStatus::Incomplete);
    expect_same(store.read("run-0002").table("curve"), sample_table(5));  // partial results stay readable
    EXPECT_EQ(add_complete_run(store, 3), "run-0003");  // ids are never reused
    EXPECT_EQ(summary(store.runs(), "run-0001").status, RunStatus::Complete);
}

TEST(RunStore, FailedAndCancelledRunsAreKeptWithTheirStatus) {
    ScratchDir dir;
    const RunStore store = RunStore::create_or_open(dir.file("study.h5"));
    RunWriter a = store.begin_run(test_info());
    RunWriter b = store.begin_run(test_info());  // two writers at once get distinct ids
    EXPECT_EQ(a.id(), "run-0001");
    EXPECT_EQ(b.id(), "run-0002");
    b.write_table("t", sample_table(2));
    b.cancel();
    a.fail("model.safetensors: tensor 'x' is truncated");
    const auto runs = store.runs();
    EXPECT_EQ(summary(runs, "run-0001").status, RunStatus::Failed);
    EXPECT_EQ(summary(runs, "run-0001").message, "model.safetensors: tensor 'x' is truncated");
    EXPECT_EQ(summary(runs, "run-0002").status, RunStatus::Cancelled);
    expect_same(store.read("run-0002").table("t"), sample_table(2));
    EXPECT_TRUE(contains(error_of([&] { a.finish(); }), "already committed"));
    EXPECT_TRUE(contains(error_of([&] { b.set_attr("x", 1.0); }), "already committed"));
}

TEST(RunStore, SharedTensorPartsAreStoredOnce) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    StoredTensor t;
    t.codec = "qamw:k=8";
    t.rows = 2;
    t.cols = 8;
    t.parts.push_back({"codes", "codes", "uint8", {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}, 64, false});
    t.parts.push_back({"norms", "norm", "float16", {2}, {0x00, 0x3c, 0x00, 0xc0}, 32, false});  // 1.0, -2.0
    t.parts.push_back({"codebook", "codebook", "float32", {2}, {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}, 64, true});
    t.parts.push_back({"seed", "transform", "int64", {1}, {7, 0, 0, 0, 0, 0, 0, 0}, 64, false});
    t.parts.push_back({"bf", "other", "bfloat16", {1}, {0x80, 0x3f}, 16, false});  // 1.0
    RunWriter w = store.begin_run(test_info());
    w.write_tensor("model.layers.0.mlp.up_proj", t);
    t.parts[0].bytes[0] = 9;
    w.write_tensor("model.layers.1.mlp.up_proj", t);
    w.finish();
    const RunData run = store.read("run-0001");
    EXPECT_EQ(run.tensors, (std::vector<std::string>{"model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"}));
    const StoredTensor back = store.read_tensor("run-0001", "model.layers.1.mlp.up_proj");
    EXPECT_EQ(back.codec, "qamw:k=8");
    EXPECT_EQ(back.rows, 2);
    EXPECT_EQ(back.cols, 8);
    ASSERT_EQ(back.parts.size(), t.parts.size());
    for (std::size_t i = 0; i < t.parts.size(); ++i) {
        EXPECT_EQ(back.parts[i].name, t.parts[i].name);
        EXPECT_EQ(back.parts[i].role, t.parts[i].role);
        EXPECT_EQ(back.parts[i].dtype, t.parts[i].dtype);
        EXPECT_EQ(back.parts[i].shape, t.parts[i].shape);
        EXPECT_EQ(back.parts[i].bytes, t.parts[i].bytes) << t.parts[i].name;
        EXPECT_EQ(back.parts[i].bits, t.parts[i].bits);
        EXPECT_EQ(back.parts[i].shared, t.parts[i].shared);
    }
    // The shared codebook is one object in the project file (the hard link survived the commit copy); the
    // per-layer codes are two.
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const auto addr = [&](const std::string& layer, const std::string& part) {
        H5O_info_t info;
        const std::string p = "/runs/run-0001/tensors/" + layer + "/" + part;
        EXPECT_GE(H5Oget_info_by_name(f, p.c_str(), &info, H5P_DEFAULT), 0) << p;
        return info.addr;
    };
    EXPECT_EQ(addr("model.layers.0.mlp.up_proj", "codebook"), addr("model.layers.1.mlp.up_proj", "codebook"));
    EXPECT_NE(addr("model.layers.0.mlp.up_proj", "codes"), addr("model.layers.1.mlp.up_proj", "codes"));
    H5Fclose(f);
    // h5dump reads the IEEE half part as the values written.
    const std::string dump = shell("/usr/bin/h5dump -d '/runs/run-0001/tensors/model.layers.0.mlp.up_proj/norms' " + path);
    EXPECT_TRUE(contains(dump, "1, -2")) << dump;
}

TEST(RunStore, H5dumpReadsTheFileWithoutQuench) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    RunWriter w = store.begin_run(test_info());
    Table t;
    t.add("sqnr_db", std::vector<double>{12.125, 17.5}, "dB").add("name", std::vector<std::string>{"q_proj", "ünï"});
    w.write_table("layers", t);
    std::vector<double> big(50000);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = double(i % 7);
    w.write_array("big", big);
    w.finish();
    const std::string col = shell("/usr/bin/h5dump -d /runs/run-0001/tables/layers/sqnr_db " + path);
    EXPECT_TRUE(contains(col, "12.125, 17.5")) << col;
    const std::string names = shell("/usr/bin/h5dump -d /runs/run-0001/tables/layers/name " + path);
    EXPECT_TRUE(contains(names, "H5T_CSET_UTF8")) << names;
    EXPECT_TRUE(contains(names, "\"q_proj\"")) << names;
    const std::string attrs = shell("/usr/bin/h5dump -A -g /runs/run-0001 " + path);
    EXPECT_TRUE(contains(attrs, "\"complete\"")) << attrs;
    EXPECT_TRUE(contains(attrs, "0123abcd-dirty")) << attrs;
    const std::string layout = shell("/usr/bin/h5dump -p -H -d /runs/run-0001/arrays/big " + path);
    EXPECT_TRUE(contains(layout, "CHUNKED")) << layout;
    EXPECT_TRUE(contains(layout, "DEFLATE")) << layout;
    EXPECT_LT(fs::file_size(path), big.size() * sizeof(double) / 4);  // the repetitive array compressed
    const std::string root = shell("/usr/bin/h5dump -a /schema_version " + path);
    EXPECT_TRUE(contains(root, "(0): 1")) << root;
}

TEST(RunStore, KilledWriterLeavesEarlierRunsIntactAndItsRunIncomplete) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    add_complete_run(store, 1);
    add_complete_run(store, 2);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the writer: a slow job that never finishes
        try {
            RunWriter w = RunStore::open(path).begin_run(test_info("qat"));
            for (int step = 0;; ++step) {
                Table curve;
                std::vector<double> loss(size_t(step + 1));
                for (int i = 0; i <= step; ++i) loss[size_t(i)] = 1.0 / (1 + i);
                curve.add("loss", loss);
                w.write_table("curve", curve);
                w.set_attr("step", int64_t(step));
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        } catch (...) {
        }
        ::_exit(1);
    }
    // Wait until the run shows as running with a few steps written, then kill the writer mid-flight.
    bool seen = false;
    for (int i = 0; i < 500 && !seen; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const auto runs = store.runs();
        seen = runs.size() == 3 && runs[2].status == RunStatus::Running && store.read("run-0003").has_table("curve") &&
               store.read("run-0003").table("curve").rows() >= 3;
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(seen) << "the child's run never showed up as running";
    ASSERT_TRUE(WIFSIGNALED(status));

    const auto runs = store.runs();
    ASSERT_EQ(ids_of(runs), (std::vector<std::string>{"run-0001", "run-0002", "run-0003"}));
    EXPECT_EQ(runs[0].status, RunStatus::Complete);
    EXPECT_EQ(runs[1].status, RunStatus::Complete);
    EXPECT_EQ(runs[2].status, RunStatus::Incomplete);
    EXPECT_TRUE(runs[2].in_sidecar);
    for (int k = 1; k <= 2; ++k) {
        const RunData r = store.read("run-000" + std::to_string(k));
        expect_same(r.table("t"), sample_table(k));
        EXPECT_EQ(r.array("curve").values, (std::vector<double>{double(k), 0.5, -0.25}));
    }
    // The partial run reads back, or (killed mid-step) fails with an error naming it; never a crash.
    const std::string err = error_of([&] {
        const RunData r = store.read("run-0003");
        EXPECT_EQ(r.summary.status, RunStatus::Incomplete);
        const auto& loss = r.table("curve").reals("loss");
        for (std::size_t i = 0; i < loss.size(); ++i) EXPECT_EQ(loss[i], 1.0 / double(1 + i));
    });
    if (!err.empty()) {
        EXPECT_TRUE(contains(err, "run-0003")) << err;
    }
    EXPECT_EQ(add_complete_run(store, 4), "run-0004");
}

TEST(RunStore, ReadersNeverSeeAHalfWrittenStep) {
    ScratchDir dir;
    const RunStore store = RunStore::create_or_open(dir.file("study.h5"));
    RunWriter w = store.begin_run(test_info());
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (int step = 1; step <= 40; ++step) {
            std::vector<double> x(20000, double(step));
            std::vector<int64_t> n(20000, step);
            Table t;
            t.add("x", x).add("n", n);
            w.write_table("t", t);
        }
        done = true;
    });
    int reads = 0;
    std::string mixed, other;  // set on a torn read or an error other than "busy"
    while (!done) {
        try {
            const RunData r = store.read("run-0001");
            if (r.has_table("t")) {
                const auto& x = r.table("t").reals("x");
                const auto& n = r.table("t").ints("n");
                // Both columns whole and from the same step.
                if (x.size() != 20000 || n.size() != 20000 || x.front() != x.back() || double(n.back()) != x.front())
                    mixed = "torn read at step " + std::to_string(n.empty() ? -1 : n.front());
                ++reads;
            }
            store.runs();
        } catch (const Error& e) {
            if (!contains(e.what(), "busy")) other = e.what();
        }
    }
    writer.join();
    EXPECT_EQ(mixed, "");
    EXPECT_EQ(other, "");
    EXPECT_GT(reads, 0);
    w.finish();
    EXPECT_EQ(store.read("run-0001").table("t").ints("n").front(), 40);
}

TEST(RunStore, BadFilesFailNamingTheFile) {
    ScratchDir dir;
    const std::string good = dir.file("study.h5");
    {
        const RunStore store = RunStore::create_or_open(good);
        add_complete_run(store, 1);
        add_complete_run(store, 2);
    }
    const std::string bytes = read_bytes(good);

    const std::string missing = dir.file("missing.h5");
    std::string msg = error_of([&] { RunStore::open(missing); });
    EXPECT_TRUE(contains(msg, missing) && contains(msg, "No such file")) << msg;

    const std::string text = dir.file("notes.h5");
    std::ofstream(text) << "just some text, not HDF5\n";
    msg = error_of([&] { RunStore::open(text); });
    EXPECT_TRUE(contains(msg, text) && contains(msg, "signature")) << msg;

    const std::string truncated = dir.file("truncated.h5");
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    msg = error_of([&] { RunStore::open(truncated).runs(); });
    EXPECT_TRUE(contains(msg, truncated) && contains(msg, "truncated")) << msg;

    // Damage run-0001's object header (its attribute names sit in it): the metadata checksum catches it.
    std::string damaged_bytes = bytes;
    const std::size_t at = damaged_bytes.find("command_line");
    ASSERT_NE(at, std::string::npos);
    for (std::size_t i = at; i < at + 12; ++i) damaged_bytes[i] = 'X';
    const std::string damaged = dir.file("damaged.h5");
    std::ofstream(damaged, std::ios::binary) << damaged_bytes;
    const RunStore store = RunStore::open(damaged);
    const auto runs = store.runs();  // listing survives: the damaged run says why
    ASSERT_EQ(runs.size(), 2u);
    const auto bad = std::find_if(runs.begin(), runs.end(), [](const RunSummary& r) { return r.status != RunStatus::Complete; });
    ASSERT_NE(bad, runs.end());
    EXPECT_TRUE(contains(bad->message, damaged)) << bad->message;
    msg = error_of([&] { store.read(bad->id); });
    EXPECT_TRUE(contains(msg, damaged) && contains(msg, bad->id)) << msg;

    // An HDF5 file that is not a run store, and one from a newer Quench.
    const std::string foreign = dir.file("foreign.h5");
    H5Fclose(H5Fcreate(foreign.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    msg = error_of([&] { RunStore::open(foreign); });
    EXPECT_TRUE(contains(msg, foreign) && contains(msg, "schema_version")) << msg;
    const std::string newer = dir.file("newer.h5");
    std::ofstream(newer, std::ios::binary) << bytes;
    {
        const hid_t f = H5Fopen(newer.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
        const hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
        const int64_t v = 99;
        H5Awrite(a, H5T_NATIVE_INT64, &v);
        H5Aclose(a);
        H5Fclose(f);
    }
    msg = error_of([&] { RunStore::open(newer); });
    EXPECT_TRUE(contains(msg, newer) && contains(msg, "schema_version 99")) << msg;
}

TEST(RunStore, MissingThingsAreNamed) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    add_complete_run(store, 1);
    std::string msg = error_of([&] { store.read("run-0042"); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "no run 'run-0042'") && contains(msg, "run-0001")) << msg;
    const RunData run = store.read("run-0001");
    msg = error_of([&] { run.table("layers"); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "run-0001") && contains(msg, "no table 'layers'")) << msg;
    msg = error_of([&] { run.table("t").reals("sqnr"); });
    EXPECT_TRUE(contains(msg, "table 't'") && contains(msg, "no column 'sqnr'") && contains(msg, path)) << msg;
    msg = error_of([&] { run.table("t").reals("name"); });
    EXPECT_TRUE(contains(msg, "column 'name' is not float64")) << msg;
    msg = error_of([&] { run.array("nope"); });
    EXPECT_TRUE(contains(msg, "no array 'nope'")) << msg;
    msg = error_of([&] { run.attr("nope"); });
    EXPECT_TRUE(contains(msg, "no attribute 'nope'")) << msg;
    msg = error_of([&] { store.read_tensor("run-0001", "model.layers.0.q_proj"); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "no quantized tensor 'model.layers.0.q_proj'")) << msg;

    // A column listed in the table but absent from the file.
    {
        const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
        H5Ldelete(f, "/runs/run-0001/tables/t/n", H5P_DEFAULT);
        H5Fclose(f);
    }
    msg = error_of([&] { store.read("run-0001"); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "table 't'") && contains(msg, "missing column 'n'")) << msg;
}

TEST(RunStore, UnknownTypesInTheFileAreNamed) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const RunStore store = RunStore::create_or_open(path);
    StoredTensor t{"rtn:b=4", 1, 2, {{"codes", "codes", "uint8", {1}, {0x21}, 8, false}}};
    {
        RunWriter w = store.begin_run(test_info());
        w.write_table("t", sample_table(1));
        w.write_tensor("layer", t);
        w.finish();
    }
    {  // replace column x by an opaque one and the codes by uint16, as a foreign writer might
        const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
        H5Ldelete(f, "/runs/run-0001/tables/t/x", H5P_DEFAULT);
        const hsize_t n = 4;
        const hid_t space = H5Screate_simple(1, &n, nullptr);
        const hid_t opaque = H5Tcreate(H5T_OPAQUE, 8);
        H5Dclose(H5Dcreate2(f, "/runs/run-0001/tables/t/x", opaque, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5Ldelete(f, "/runs/run-0001/tensors/layer/codes", H5P_DEFAULT);
        const hsize_t one = 1;
        const hid_t s1 = H5Screate_simple(1, &one, nullptr);
        const hid_t d = H5Dcreate2(f, "/runs/run-0001/tensors/layer/codes", H5T_STD_U16LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(s1);
        H5Tclose(opaque);
        H5Sclose(space);
        H5Fclose(f);
    }
    std::string msg = error_of([&] { store.read("run-0001"); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "column 'x'") && contains(msg, "unsupported column type")) << msg;
    msg = error_of([&] { store.read_tensor("run-0001", "layer"); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "part 'codes'") && contains(msg, "unsupported dtype")) << msg;
}

TEST(RunStore, BadWritesAreRefusedNamingWhat) {
    ScratchDir dir;
    const RunStore store = RunStore::create_or_open(dir.file("study.h5"));
    RunWriter w = store.begin_run(test_info());
    Table uneven;
    uneven.add("a", std::vector<double>{1, 2}).add("b", std::vector<int64_t>{1});
    std::string msg = error_of([&] { w.write_table("uneven", uneven); });
    EXPECT_TRUE(contains(msg, w.sidecar_path()) && contains(msg, "table 'uneven'") && contains(msg, "column 'b' has 1 rows"))
        << msg;
    msg = error_of([&] { w.write_table("a/b", sample_table(1)); });
    EXPECT_TRUE(contains(msg, "invalid table name 'a/b'")) << msg;
    msg = error_of([&] { w.write_array("m", std::vector<double>{1, 2, 3}, {2, 2}); });
    EXPECT_TRUE(contains(msg, "array 'm'") && contains(msg, "shape [2, 2]")) << msg;
    msg = error_of([&] { w.set_attr("status", std::string("complete")); });
    EXPECT_TRUE(contains(msg, "'status' is managed by the run store")) << msg;
    StoredTensor t{"rtn:b=4", 1, 2, {{"codes", "codes", "uint4", {1}, {0x21}, 8, false}}};
    msg = error_of([&] { w.write_tensor("layer", t); });
    EXPECT_TRUE(contains(msg, "part 'codes'") && contains(msg, "unknown dtype 'uint4'")) << msg;
    t.parts[0].dtype = "int16";
    msg = error_of([&] { w.write_tensor("layer", t); });
    EXPECT_TRUE(contains(msg, "1 bytes for shape [1] of int16 (expected 2)")) << msg;
    // Nothing half-written stays behind: the run still finishes and reads back clean.
    w.finish();
    const RunData run = store.read("run-0001");
    EXPECT_TRUE(run.tables.empty());
    EXPECT_TRUE(run.arrays.empty());
}

TEST(RunStore, ReadOnlyDirectoryFailsClearlyAndChangesNothing) {
    ScratchDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    const std::string ro = dir.file("ro");
    fs::create_directory(ro);
    const std::string existing = ro + "/study.h5";
    add_complete_run(RunStore::create_or_open(existing), 1);
    fs::remove_all(existing + ".d");  // as if copied here from elsewhere
    const std::string before = read_bytes(existing);
    ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
    const ChildResult r = in_child([&](std::string& said) {
        // Root ignores permissions, so the child drops to "nobody" first.
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 77;
        if (::access(ro.c_str(), W_OK) == 0) return 77;
        const std::string fresh = ro + "/new.h5";
        const std::string m1 = error_of([&] { RunStore::create_or_open(fresh); });
        const RunStore store = RunStore::open(existing);  // reading works
        const std::string m2 = error_of([&] { store.begin_run(test_info()); });
        said = m1 + "\n" + m2;
        return contains(m1, fresh) && contains(m2, existing + ".d") && store.runs().size() == 1 ? 0 : 1;
    });
    ::chmod(ro.c_str(), 0755);
    if (r.code == 77) GTEST_SKIP() << "cannot drop privileges to test permissions";
    EXPECT_EQ(r.code, 0) << r.said;
    EXPECT_EQ(entries(ro), std::vector<std::string>{"study.h5"});
    EXPECT_EQ(read_bytes(existing), before);
}

TEST(RunStore, FullDiskWhileCreatingLeavesNoFile) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    const ChildResult r = in_child([&](std::string& said) {
        limit_file_size(256);
        said = error_of([&] { RunStore::create_or_open(path); });
        return contains(said, path) ? 0 : 1;
    });
    EXPECT_EQ(r.code, 0) << r.said;
    EXPECT_TRUE(entries(dir.path()).empty());  // neither the project nor a temporary
}

TEST(RunStore, FullDiskWhileWritingKeepsEarlierRuns) {
    ScratchDir dir;
    const std::string path = dir.file("study.h5");
    add_complete_run(RunStore::create_or_open(path), 1);
    const std::string before = read_bytes(path);
    std::vector<double> noise(200000);
    std::mt19937_64 rng(1);
    for (auto& v : noise) v = std::uniform_real_distribution<double>(-1, 1)(rng);  // incompressible

    // Full while writing the run's data into its sidecar.
    ChildResult r = in_child([&](std::string& said) {
        const RunStore store = RunStore::open(path);
        RunWriter w = store.begin_run(test_info());
        limit_file_size(256 << 10);
        const std::string m1 = error_of([&] { w.write_array("noise", noise); });
        const std::string m2 = error_of([&] { w.fail("out of space"); });  // the commit is refused too
        said = m1 + "\n" + m2;
        return contains(m1, w.sidecar_path()) && contains(m1, "array 'noise'") && contains(m2, path) ? 0 : 1;
    });
    EXPECT_EQ(r.code, 0) << r.said;

    // Full at the commit: the sidecar has room, the project file would not.
    r = in_child([&](std::string& said) {
        const RunStore store = RunStore::open(path);
        RunWriter w = store.begin_run(test_info());
        w.write_array("noise", noise);
        limit_file_size(rlim_t(fs::file_size(w.sidecar_path()) + (256 << 10)));
        said = error_of([&] { w.fail("out of space"); });
        return contains(said, path) && contains(said, "run-0003") && contains(said, "file size limit") ? 0 : 1;
    });
    EXPECT_EQ(r.code, 0) << r.said;

    EXPECT_EQ(read_bytes(path), before);  // the project file was not touched at all
    const RunStore store = RunStore::open(path);
    const auto runs = store.runs();
    ASSERT_EQ(ids_of(runs), (std::vector<std::string>{"run-0001", "run-0002", "run-0003"}));
    EXPECT_EQ(runs[0].status, RunStatus::Complete);
    EXPECT_EQ(runs[1].status, RunStatus::Incomplete);  // its sidecar was cut short by the full disk
    EXPECT_TRUE(contains(runs[1].message, "run-0002.partial.h5")) << runs[1].message;
    EXPECT_EQ(runs[2].status, RunStatus::Incomplete);
    EXPECT_EQ(runs[2].message, "out of space");  // fail() recorded its reason in the sidecar first
    EXPECT_EQ(store.read("run-0003").array("noise").values, noise);  // the data waits in the sidecar
    expect_same(store.read("run-0001").table("t"), sample_table(1));
    for (const auto& name : entries(dir.path())) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}
