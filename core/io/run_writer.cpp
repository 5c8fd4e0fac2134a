// RunWriter: a run is written into its own sidecar file under step locks, then copied into the project file
// on commit (docs/hdf5-schema.md, "Runs in progress").
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
#include "io/run_store_files.h"

namespace quench {

using namespace detail;

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
