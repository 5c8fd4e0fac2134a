#pragma once
// The run store's files (docs/hdf5-schema.md): where a project's files live, run ids, opening and syncing
// HDF5 files, creating and validating a project, and finding a run wherever it is (project file or its
// sidecar while in progress). Internal to io/run_store.cpp and io/run_writer.cpp.
#include <fcntl.h>
#include <hdf5.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"
#include "io/hdf5_handle.h"
#include "io/hdf5_objects.h"
#include "io/run_locks.h"
#include "io/run_store.h"

namespace quench::detail {

namespace fs = std::filesystem;
// The HDF5 helpers the run-store files use, named once for all three.
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

constexpr const char* kFormat = "quench.run-store";
constexpr auto kWaitLimit = std::chrono::seconds(5);  // how long readers wait out a writer before "busy"
constexpr uint64_t kCommitMargin = 1 << 20;  // project-file metadata a commit may add besides the data

// Where the files of a project live (docs/hdf5-schema.md, "Runs in progress").
struct Layout {
    std::string project, dir;
    explicit Layout(const std::string& p) : project(p), dir(p + ".d") {}
    std::string project_lock() const { return dir + "/project.lock"; }
    std::string lock(const std::string& id) const { return dir + "/" + id + ".lock"; }
    std::string sidecar(const std::string& id) const { return dir + "/" + id + ".partial.h5"; }
};

// Shared project lock for a reader; a project nobody ever wrote a run to has no lock file and needs none.
LockFile read_lock_project(const Layout& l);

std::string run_id(int64_t n);                 // "run-0007"
int64_t run_number(const std::string& id);     // -1 unless "run-<digits>"
bool id_less(const std::string& a, const std::string& b);
std::vector<std::string> sidecar_ids(const Layout& l);  // run ids with a sidecar or a lock file

h5::Handle file_access();
// Opens an HDF5 file; HDF5's own lock failing (another program has it open for writing) is waited out briefly.
h5::Handle open_h5(const std::string& path, bool write);
void close_checked(h5::Handle& h, const std::string& where);
void fsync_file(const std::string& path);
uint64_t file_size(const std::string& path);

RunStatus parse_status(const std::string& s, const std::string& where);
bool is_final(RunStatus s);
void put_run_info(hid_t run, const RunInfo& info, const std::string& where);
RunSummary summary_from_run(hid_t run, const std::string& id, const std::string& where);  // as a run group records it
RunSummary summary_of(hid_t runs, const std::string& id, const std::string& where);
// A sidecar's run as readers see it: running while its writer holds the alive lock, else incomplete.
RunSummary sidecar_summary(const Layout& l, const std::string& id);
std::string known_runs_hint(hid_t runs, const Layout& l);

void create_project(const std::string& path);
void validate_project(const std::string& path);
// Enough disk space and file-size limit for the sidecar's run to be copied into the project file.
void check_room(const Layout& l, const std::string& id, const std::string& sidecar);

// Finds run id in the project file or its sidecar, holds the locks that keep it still, and calls
// fn(file, run group, where, live) with live = the sidecar status (null for a project run).
template <class F>
auto visit_run(const std::string& project, const std::string& id, F&& fn) {
    h5::quiet();
    const Layout l(project);
    const LockFile project_lock = read_lock_project(l);
    const std::string sidecar = l.sidecar(id);
    {
        const h5::Handle f = open_h5(project, false);
        const h5::Handle runs = h5::open_group(f, "runs", project, "group /runs");
        if (h5::has_link(runs, id)) {
            const std::string where = project + ": " + id;
            const h5::Handle run = h5::open_group(runs, id, where, "run group");
            bool final_status = false;
            try {
                final_status = is_final(parse_status(h5::get_text(run, "status", where), where));
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
    const h5::Handle f = open_h5(sidecar, false);
    const h5::Handle runs = h5::open_group(f, "runs", sidecar, "group /runs");
    const h5::Handle run = h5::open_group(runs, id, where, "run group");
    return fn(f.get(), run.get(), where, static_cast<const RunSummary*>(&live));
}

}  // namespace quench::detail
