#include "io/run_store.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <thread>

#include "common/build_info.h"
#include "common/error.h"
#include "io/hdf5_handle.h"
#include "io/hdf5_objects.h"
#include "io/run_locks.h"

namespace quench {

namespace fs = std::filesystem;
using detail::Clock;
using detail::kRetryEvery;
using detail::LockFile;
using detail::StepLock;
using detail::sys_error;
using h5::check_name;
using h5::get_attrs;
using h5::get_int;
using h5::get_text;
using h5::Handle;
using h5::has_link;
using h5::link_names;
using h5::make_group;
using h5::open_attr;
using h5::open_group;
using h5::put_attr;
using h5::put_attr_u64;
using h5::put_attrs;
using h5::read_array_from;
using h5::read_table_from;
using h5::read_tensor_from;
using h5::write_array_to;
using h5::write_table_to;
using h5::write_tensor_to;

namespace {

constexpr const char* kFormat = "quench.run-store";
constexpr auto kWaitLimit = std::chrono::seconds(5);  // how long readers wait out a writer before "busy"
constexpr uint64_t kCommitMargin = 1 << 20;  // project-file metadata a commit may add besides the data

// ---------------------------------------------------------------------------------------------- layout

// Where the files of a project live (docs/hdf5-schema.md, "Runs in progress").
struct Layout {
    std::string project, dir;
    explicit Layout(const std::string& p) : project(p), dir(p + ".d") {}
    std::string project_lock() const { return dir + "/project.lock"; }
    std::string lock(const std::string& id) const { return dir + "/" + id + ".lock"; }
    std::string sidecar(const std::string& id) const { return dir + "/" + id + ".partial.h5"; }
};

// Shared project lock for a reader; a project nobody ever wrote a run to has no lock file and needs none.
LockFile read_lock_project(const Layout& l) {
    LockFile lock = LockFile::open(l.project_lock(), O_RDONLY);
    if (lock.is_open() && !lock.lock_read_within(LockFile::kProject, kWaitLimit))
        throw Error(l.project + ": busy: another process is adding a run to it; try again");
    return lock;
}

// ---------------------------------------------------------------------------------------------- ids

std::string run_id(int64_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "run-%04lld", static_cast<long long>(n));
    return buf;
}

int64_t run_number(const std::string& id) {  // -1 unless "run-<digits>"
    if (id.size() < 5 || id.compare(0, 4, "run-") != 0 || id.size() > 22) return -1;
    int64_t n = 0;
    for (std::size_t i = 4; i < id.size(); ++i) {
        if (id[i] < '0' || id[i] > '9') return -1;
        n = n * 10 + (id[i] - '0');
    }
    return n;
}

bool id_less(const std::string& a, const std::string& b) {
    const int64_t na = run_number(a), nb = run_number(b);
    return na != nb ? na < nb : a < b;
}

// Run ids that have a sidecar or a lock file in the run directory.
std::vector<std::string> sidecar_ids(const Layout& l) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(l.dir, ec)) {
        const std::string name = e.path().filename().string();
        for (const std::string suffix : {".partial.h5", ".lock"}) {
            if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
                continue;
            const std::string id = name.substr(0, name.size() - suffix.size());
            if (run_number(id) >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
        }
    }
    std::sort(ids.begin(), ids.end(), id_less);
    return ids;
}

// ---------------------------------------------------------------------------------------------- files

Handle file_access() {
    Handle p(H5Pcreate(H5P_FILE_ACCESS));
    // HDF5 1.8 object formats: readable by every h5py, metadata checksummed (damage reads as an error, not
    // garbage), and without the 1.10 superblock's "open for writing" flag, which would make a file whose
    // writer was killed unopenable until someone runs h5clear.
    H5Pset_libver_bounds(p, H5F_LIBVER_V18, H5F_LIBVER_V18);
    // Closing a file closes whatever is still open in it, so its descriptor (and HDF5's flock) really goes.
    H5Pset_fclose_degree(p, H5F_CLOSE_STRONG);
    // Keep HDF5's own file lock as a second guard, but not on filesystems that lack flock.
    H5Pset_file_locking(p, true, true);
    return p;
}

// Opens an HDF5 file; HDF5's own lock failing (another program has it open for writing) is waited out briefly.
Handle open_h5(const std::string& path, bool write) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error(sys_error(path, "cannot open", errno));
    const Handle fapl = file_access();
    const auto deadline = Clock::now() + kWaitLimit;
    for (;;) {
        const hid_t f = H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
        if (f >= 0) return Handle(f);
        bool lock_conflict = false;
        const std::string why = h5::take_error(&lock_conflict);
        if (lock_conflict && Clock::now() < deadline) {
            std::this_thread::sleep_for(kRetryEvery);
            continue;
        }
        throw Error(path + ": cannot open " + (write ? "for writing " : "") + "as an HDF5 file (" + why + ")");
    }
}

void close_checked(Handle& h, const std::string& where) {
    if (h.close() < 0) h5::fail(where, "cannot write the file out");
}

void fsync_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(sys_error(path, "cannot reopen to sync", errno));
    const int rc = ::fsync(fd), err = errno;
    ::close(fd);
    if (rc != 0) throw Error(sys_error(path, "fsync failed", err));
}

uint64_t file_size(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// ---------------------------------------------------------------------------------------------- runs

RunStatus parse_status(const std::string& s, const std::string& where) {
    for (RunStatus st : {RunStatus::Running, RunStatus::Incomplete, RunStatus::Complete, RunStatus::Failed,
                         RunStatus::Cancelled})
        if (s == run_status_name(st)) return st;
    throw Error(where + ": unknown status '" + s + "'");
}

bool is_final(RunStatus s) { return s == RunStatus::Complete || s == RunStatus::Failed || s == RunStatus::Cancelled; }

void put_run_info(hid_t run, const RunInfo& info, const std::string& where) {
    put_attr(run, "kind", info.kind, where);
    put_attr(run, "command_line", info.command_line, where);
    put_attr_u64(run, "seed", info.seed, where);
    put_attr(run, "quench_version", info.quench_version, where);
    put_attr(run, "git_hash", info.git_hash, where);
    put_attr(run, "started_utc", info.started_utc, where);
}

// The summary a run group records.
RunSummary summary_from_run(hid_t run, const std::string& id, const std::string& where) {
    RunSummary s;
    s.id = id;
    s.status = parse_status(get_text(run, "status", where), where);
    s.info.kind = get_text(run, "kind", where);
    s.info.command_line = get_text(run, "command_line", where);
    if (H5Aexists(run, "seed") > 0)
        h5::ok(H5Aread(open_attr(run, "seed", where), H5T_NATIVE_UINT64, &s.info.seed), where, "cannot read seed");
    s.info.quench_version = get_text(run, "quench_version", where);
    s.info.git_hash = get_text(run, "git_hash", where);
    s.info.started_utc = get_text(run, "started_utc", where);
    s.info.finished_utc = get_text(run, "finished_utc", where);
    s.updated_utc = get_text(run, "updated_utc", where);
    s.message = get_text(run, "error", where);
    return s;
}

RunSummary summary_of(hid_t runs, const std::string& id, const std::string& where) {
    return summary_from_run(open_group(runs, id, where, "run group"), id, where);
}

// A sidecar's run as readers see it: running while its writer holds the alive lock, else incomplete.
RunSummary sidecar_summary(const Layout& l, const std::string& id) {
    RunSummary s;
    s.id = id;
    s.in_sidecar = true;
    const std::string sidecar = l.sidecar(id);
    LockFile lock = LockFile::open(l.lock(id), O_RDONLY);
    const bool alive = lock.is_open() && lock.held_elsewhere(LockFile::kAlive);
    s.status = alive ? RunStatus::Running : RunStatus::Incomplete;
    if (!fs::exists(sidecar)) {
        s.message = alive ? "starting" : "the writer stopped before creating " + sidecar;
        return s;
    }
    if (lock.is_open() && !lock.lock_read_within(LockFile::kStep, kWaitLimit)) {
        s.message = "busy: " + sidecar + " is being written";
        return s;
    }
    try {
        const Handle f = open_h5(sidecar, false);
        const Handle runs = open_group(f, "runs", sidecar, "group /runs");
        const RunSummary stored = summary_of(runs, id, sidecar + ": " + id);
        s.info = stored.info;
        s.updated_utc = stored.updated_utc;
        s.message = stored.message;
    } catch (const Error& e) {
        s.message = std::string("unreadable: ") + e.what();
    }
    if (!alive && s.message.empty()) s.message = "the writer stopped; partial results are in " + sidecar;
    return s;
}

std::string known_runs_hint(hid_t runs, const Layout& l) {
    std::vector<std::string> ids = link_names(runs);
    for (const auto& id : sidecar_ids(l))
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    std::sort(ids.begin(), ids.end(), id_less);
    if (ids.empty()) return " (the project has no runs)";
    return " (runs: " + ids.front() + (ids.size() > 1 ? " .. " + ids.back() : "") + ")";
}

// Finds run id in the project file or its sidecar, holds the locks that keep it still, and calls
// fn(file, run group, where, live) with live = the sidecar status (null for a project run).
template <class F>
auto visit_run(const std::string& project, const std::string& id, F&& fn) {
    h5::quiet();
    const Layout l(project);
    const LockFile project_lock = read_lock_project(l);
    const std::string sidecar = l.sidecar(id);
    {
        const Handle f = open_h5(project, false);
        const Handle runs = open_group(f, "runs", project, "group /runs");
        if (has_link(runs, id)) {
            const std::string where = project + ": " + id;
            const Handle run = open_group(runs, id, where, "run group");
            bool final_status = false;
            try {
                final_status = is_final(parse_status(get_text(run, "status", where), where));
            } catch (const Error&) {
            }
            if (final_status || !fs::exists(sidecar)) return fn(f.get(), run.get(), where, static_cast<const RunSummary*>(nullptr));
        }
        if (!fs::exists(sidecar)) throw Error(project + ": no run '" + id + "'" + known_runs_hint(runs, l));
    }
    RunSummary live = sidecar_summary(l, id);
    LockFile lock = LockFile::open(l.lock(id), O_RDONLY);
    const std::string where = sidecar + ": " + id;
    if (lock.is_open() && !lock.lock_read_within(LockFile::kStep, kWaitLimit))
        throw Error(where + ": busy: its writer is updating it; try again");
    const Handle f = open_h5(sidecar, false);
    const Handle runs = open_group(f, "runs", sidecar, "group /runs");
    const Handle run = open_group(runs, id, where, "run group");
    return fn(f.get(), run.get(), where, static_cast<const RunSummary*>(&live));
}

// ---------------------------------------------------------------------------------------------- project

void create_project(const std::string& path) {
    const fs::path p(path);
    const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    if (p.filename().empty()) throw Error(path + ": not a file path");
    std::string tmp = (dir / ("." + p.filename().string() + ".tmp-XXXXXX")).string();
    const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) throw Error(sys_error(path, "cannot create a temporary file in " + dir.string(), errno));
    ::fchmod(fd, 0644);
    ::close(fd);
    struct RemoveTemp {
        std::string path;
        ~RemoveTemp() { ::unlink(path.c_str()); }  // after link() this drops only the temporary name
    } remove_temp{tmp};
    {
        const Handle fapl = file_access();
        Handle f(h5::id(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), path, "cannot create"));
        put_attr(f, "schema_version", kRunStoreSchemaVersion, path);
        put_attr(f, "format", std::string(kFormat), path);
        put_attr(f, "created_utc", iso8601_utc_now(), path);
        put_attr(f, "created_by", std::string("Quench ") + quench_version(), path);
        make_group(f, "runs", path);
        close_checked(f, path);
    }
    fsync_file(tmp);
    // link() rather than rename(): when another process created the project meanwhile, theirs is kept.
    if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)
        throw Error(sys_error(path, "cannot move the new project file into place", errno));
}

void validate_project(const std::string& path) {
    const Handle f = open_h5(path, false);
    if (H5Aexists(f, "schema_version") <= 0)
        throw Error(path + ": not a Quench run store (no schema_version attribute on /)");
    const int64_t v = get_int(f, "schema_version", path);
    if (v < 1 || v > kRunStoreSchemaVersion)
        throw Error(path + ": schema_version " + std::to_string(v) + " is not one this Quench reads (1.." +
                    std::to_string(kRunStoreSchemaVersion) + ")");
    if (!has_link(f, "runs")) throw Error(path + ": missing group /runs");
}

void check_room(const Layout& l, const std::string& id, const std::string& sidecar) {
    const uint64_t need = file_size(sidecar) + kCommitMargin;
    const fs::path dir = fs::path(l.project).parent_path().empty() ? fs::path(".") : fs::path(l.project).parent_path();
    const std::string keep = "; the run stays in " + sidecar;
    struct statvfs v {};
    if (::statvfs(dir.c_str(), &v) == 0) {
        const uint64_t avail = uint64_t(v.f_bavail) * uint64_t(v.f_frsize);
        if (avail < need)
            throw Error(l.project + ": not enough disk space to add " + id + " (needs about " + std::to_string(need) +
                        " bytes, " + std::to_string(avail) + " free)" + keep);
    }
    rlimit lim {};
    if (::getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        file_size(l.project) + need > uint64_t(lim.rlim_cur))
        throw Error(l.project + ": adding " + id + " would pass the file size limit of " +
                    std::to_string(uint64_t(lim.rlim_cur)) + " bytes" + keep);
}

}  // namespace

// ---------------------------------------------------------------------------------------------- RunStore

RunStore RunStore::open(const std::string& path) {
    h5::quiet();
    const LockFile lock = read_lock_project(Layout(path));
    validate_project(path);
    return RunStore(path);
}

RunStore RunStore::create_or_open(const std::string& path) {
    h5::quiet();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) create_project(path);
    return open(path);
}

std::vector<RunSummary> RunStore::runs() const {
    h5::quiet();
    const Layout l(path_);
    const LockFile project_lock = read_lock_project(l);
    std::map<std::string, RunSummary> found;
    {
        const Handle f = open_h5(path_, false);
        const Handle runs = open_group(f, "runs", path_, "group /runs");
        for (const auto& id : link_names(runs)) {
            RunSummary s;
            try {
                s = summary_of(runs, id, path_ + ": " + id);
            } catch (const Error& e) {  // one damaged run must not hide the others
                s.id = id;
                s.status = RunStatus::Incomplete;
                s.message = e.what();
            }
            if (s.status == RunStatus::Running) {
                s.status = RunStatus::Incomplete;
                s.message = "its commit into the project file was cut short";
            }
            found[id] = s;
        }
    }
    for (const auto& id : sidecar_ids(l)) {
        const auto it = found.find(id);
        if (it == found.end() || !is_final(it->second.status)) found[id] = sidecar_summary(l, id);
    }
    std::vector<RunSummary> out;
    for (auto& [id, s] : found) out.push_back(std::move(s));
    std::sort(out.begin(), out.end(), [](const RunSummary& a, const RunSummary& b) { return id_less(a.id, b.id); });
    return out;
}

RunData RunStore::read(const std::string& id) const {
    return visit_run(path_, id, [&](hid_t, hid_t run, const std::string& where, const RunSummary* live) {
        RunData d;
        d.where = where;
        d.attrs = get_attrs(run, where);
        d.summary = summary_from_run(run, id, where);
        if (live) {
            d.summary.status = live->status;
            d.summary.in_sidecar = true;
            if (d.summary.message.empty()) d.summary.message = live->message;
        } else if (d.summary.status == RunStatus::Running) {  // see runs()
            d.summary.status = RunStatus::Incomplete;
            d.summary.message = "its commit into the project file was cut short";
        }
        if (has_link(run, "tables")) {
            const Handle g = open_group(run, "tables", where, "group 'tables'");
            for (const auto& name : link_names(g)) d.tables[name] = read_table_from(g, name, where);
        }
        if (has_link(run, "arrays")) {
            const Handle g = open_group(run, "arrays", where, "group 'arrays'");
            for (const auto& name : link_names(g)) d.arrays[name] = read_array_from(g, name, where);
        }
        if (has_link(run, "tensors")) d.tensors = link_names(open_group(run, "tensors", where, "group 'tensors'"));
        return d;
    });
}

StoredTensor RunStore::read_tensor(const std::string& id, const std::string& layer) const {
    return visit_run(path_, id, [&](hid_t, hid_t run, const std::string& where, const RunSummary*) {
        return read_tensor_from(run, layer, where);
    });
}

// ---------------------------------------------------------------------------------------------- RunWriter

struct RunWriter::State {
    std::string project, id, sidecar;
    LockFile lock;  // holds kAlive for the writer's lifetime
    std::map<std::string, std::string> shared_parts;
    bool committed = false;
    std::string where() const { return sidecar + ": " + id; }
};

RunWriter RunStore::begin_run(const RunInfo& info_in) const {
    h5::quiet();
    const Layout l(path_);
    if (::mkdir(l.dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw Error(sys_error(l.dir, "cannot create the directory for runs in progress", errno));
    // The exclusive project lock makes choosing the id and creating the sidecar one step for readers and
    // for other writers.
    LockFile project_lock = LockFile::open(l.project_lock(), O_RDWR | O_CREAT);
    project_lock.lock_write(LockFile::kProject);
    int64_t last = 0;
    {
        const Handle f = open_h5(path_, false);
        for (const auto& id : link_names(open_group(f, "runs", path_, "group /runs"))) last = std::max(last, run_number(id));
    }
    for (const auto& id : sidecar_ids(l)) last = std::max(last, run_number(id));

    auto s = std::make_unique<RunWriter::State>();
    s->project = path_;
    s->id = run_id(last + 1);
    s->sidecar = l.sidecar(s->id);
    s->lock = LockFile::open(l.lock(s->id), O_RDWR | O_CREAT | O_EXCL);
    if (!s->lock.try_lock(LockFile::kAlive, true)) throw Error(l.lock(s->id) + ": locked by another writer");
    RunInfo info = info_in;
    if (info.started_utc.empty()) info.started_utc = iso8601_utc_now();
    try {
        const StepLock step(s->lock);
        const Handle fapl = file_access();
        Handle f(h5::id(H5Fcreate(s->sidecar.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl), s->sidecar, "cannot create"));
        put_attr(f, "schema_version", kRunStoreSchemaVersion, s->sidecar);
        put_attr(f, "format", std::string(kFormat), s->sidecar);
        put_attr(f, "sidecar_of", fs::path(path_).filename().string(), s->sidecar);
        const Handle runs = make_group(f, "runs", s->sidecar);
        const Handle run = make_group(runs, s->id, s->where());
        put_attr(run, "status", std::string(run_status_name(RunStatus::Running)), s->where());
        put_run_info(run, info, s->where());
        put_attr(run, "updated_utc", info.started_utc, s->where());
        close_checked(f, s->sidecar);
    } catch (...) {
        ::unlink(s->sidecar.c_str());
        ::unlink(l.lock(s->id).c_str());
        throw;
    }
    return RunWriter(std::move(s));
}

RunWriter::RunWriter(std::unique_ptr<State> state) : s_(std::move(state)) {}
RunWriter::RunWriter(RunWriter&&) noexcept = default;
RunWriter& RunWriter::operator=(RunWriter&&) noexcept = default;
RunWriter::~RunWriter() = default;  // closing the lock file drops the alive lock: the run reads as incomplete

const std::string& RunWriter::id() const { return s_->id; }
const std::string& RunWriter::sidecar_path() const { return s_->sidecar; }
bool RunWriter::committed() const { return s_->committed; }

namespace {

// One write step: exclusive step lock, open the sidecar, write, stamp updated_utc, flush, close. Between
// steps the file is closed and consistent, which is what readers (and a killed writer) rely on.
template <class F>
void write_step(LockFile& lock, const std::string& sidecar, const std::string& id, bool committed, F&& body) {
    h5::quiet();
    const std::string where = sidecar + ": " + id;
    if (committed) throw Error(where + ": the run was already committed");
    const StepLock step(lock);
    Handle f = open_h5(sidecar, true);
    {
        const Handle run = open_group(open_group(f, "runs", sidecar, "group /runs"), id, where, "run group");
        body(f.get(), run.get(), where);
        put_attr(run, "updated_utc", iso8601_utc_now(), where);
    }
    h5::ok(H5Fflush(f, H5F_SCOPE_LOCAL), where, "cannot flush");
    close_checked(f, where);
}

const std::vector<std::string> kManagedKeys = {"status", "updated_utc", "finished_utc"};

}  // namespace

void RunWriter::set_attrs(const Attrs& attrs) {
    for (const auto& [name, v] : attrs)
        if (std::find(kManagedKeys.begin(), kManagedKeys.end(), name) != kManagedKeys.end())
            throw Error(s_->where() + ": attribute '" + name + "' is managed by the run store");
    write_step(s_->lock, s_->sidecar, s_->id, s_->committed,
               [&](hid_t, hid_t run, const std::string& where) { put_attrs(run, attrs, where); });
}

void RunWriter::set_attr(const std::string& name, const AttrValue& value) { set_attrs({{name, value}}); }

void RunWriter::write_table(const std::string& name, const Table& table) {
    check_name(s_->where(), "table", name);
    write_step(s_->lock, s_->sidecar, s_->id, s_->committed,
               [&](hid_t, hid_t run, const std::string& where) { write_table_to(run, name, table, where); });
}

void RunWriter::write_array(const std::string& name, const Array& array) {
    check_name(s_->where(), "array", name);
    write_step(s_->lock, s_->sidecar, s_->id, s_->committed,
               [&](hid_t, hid_t run, const std::string& where) { write_array_to(run, name, array, where); });
}

void RunWriter::write_array(const std::string& name, const std::vector<float>& values, std::vector<int64_t> shape,
                            const Attrs& attrs) {
    write_array(name, Array{std::move(shape), std::vector<double>(values.begin(), values.end()), true, attrs});
}

void RunWriter::write_array(const std::string& name, const std::vector<double>& values, std::vector<int64_t> shape,
                            const Attrs& attrs) {
    write_array(name, Array{std::move(shape), values, false, attrs});
}

void RunWriter::write_tensor(const std::string& layer, const StoredTensor& tensor) {
    check_name(s_->where(), "tensor", layer);
    const std::string run_path = "/runs/" + s_->id;
    write_step(s_->lock, s_->sidecar, s_->id, s_->committed, [&](hid_t file, hid_t run, const std::string& where) {
        write_tensor_to(file, run, run_path, layer, tensor, s_->shared_parts, where);
    });
}

void RunWriter::finish() { commit(RunStatus::Complete, ""); }
void RunWriter::cancel() { commit(RunStatus::Cancelled, ""); }

void RunWriter::fail(const std::string& message) {
    // Recorded in the sidecar first, so the reason survives even when the commit itself fails (full disk).
    try {
        set_attr("error", message);
    } catch (const Error&) {
    }
    commit(RunStatus::Failed, message);
}

// Copies the sidecar's run group into the project file (H5Ocopy), writes finished_utc and, last, the final
// status, flushes, closes, fsyncs, then removes the sidecar and its lock file. All under the exclusive
// project lock, so readers see the run either in its sidecar or complete in the project file.
void RunWriter::commit(RunStatus status, const std::string& message) {
    h5::quiet();
    if (s_->committed) throw Error(s_->where() + ": the run was already committed");
    const Layout l(s_->project);
    LockFile project_lock = LockFile::open(l.project_lock(), O_RDWR | O_CREAT);
    project_lock.lock_write(LockFile::kProject);
    check_room(l, s_->id, s_->sidecar);
    const std::string where = s_->project + ": " + s_->id;
    {
        const Handle side = open_h5(s_->sidecar, false);
        Handle proj = open_h5(s_->project, true);
        {
            const Handle runs = open_group(proj, "runs", s_->project, "group /runs");
            if (has_link(runs, s_->id)) {  // left by a commit that was cut short; never a final run
                if (is_final(summary_of(runs, s_->id, where).status)) throw Error(where + ": already in the project file");
                h5::ok(H5Ldelete(runs, s_->id.c_str(), H5P_DEFAULT), where, "cannot remove an interrupted copy");
            }
            const std::string src = "/runs/" + s_->id;
            h5::ok(H5Ocopy(side, src.c_str(), runs, s_->id.c_str(), H5P_DEFAULT, H5P_DEFAULT), where,
                      "cannot copy the run from " + s_->sidecar);
            const Handle run = open_group(runs, s_->id, where, "run group");
            put_attr(run, "finished_utc", iso8601_utc_now(), where);
            if (!message.empty()) put_attr(run, "error", message, where);
            put_attr(run, "status", std::string(run_status_name(status)), where);
        }
        h5::ok(H5Fflush(proj, H5F_SCOPE_LOCAL), where, "cannot flush");
        close_checked(proj, where);
    }
    fsync_file(s_->project);
    s_->committed = true;
    ::unlink(s_->sidecar.c_str());
    ::unlink(l.lock(s_->id).c_str());
    s_->lock = LockFile();  // drops the alive lock
}

}  // namespace quench
