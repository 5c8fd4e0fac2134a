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

}  // namespace quench
