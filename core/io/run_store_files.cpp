#include "io/run_store_files.h"

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

namespace quench::detail {


// ---------------------------------------------------------------------------------------------- layout

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

}  // namespace quench::detail
