// The run store's plain data (tables, columns, run data lookups, run info): no HDF5 here, so readers of a
// RunData and writers of a Table need nothing of the file layer (io/run_store.cpp).
#include <algorithm>
#include <ctime>

#include "common/build_info.h"
#include "common/error.h"
#include "io/run_store.h"

namespace quench {

std::size_t Column::size() const {
    return std::visit([](const auto& v) { return v.size(); }, values);
}

Table& Table::add(const std::string& name, std::vector<double> v, const std::string& units) {
    columns.push_back({name, std::move(v), units});
    return *this;
}
Table& Table::add(const std::string& name, std::vector<int64_t> v, const std::string& units) {
    columns.push_back({name, std::move(v), units});
    return *this;
}
Table& Table::add(const std::string& name, std::vector<std::string> v, const std::string& units) {
    columns.push_back({name, std::move(v), units});
    return *this;
}

bool Table::has(const std::string& name) const {
    return std::any_of(columns.begin(), columns.end(), [&](const Column& c) { return c.name == name; });
}

const Column& Table::column(const std::string& name) const {
    for (const auto& c : columns)
        if (c.name == name) return c;
    throw Error((where.empty() ? "table" : where) + ": no column '" + name + "'");
}

template <class T>
static const std::vector<T>& typed_column(const Table& t, const std::string& name, const char* type) {
    const auto* v = std::get_if<std::vector<T>>(&t.column(name).values);
    if (!v) throw Error((t.where.empty() ? "table" : t.where) + ": column '" + name + "' is not " + type);
    return *v;
}
const std::vector<double>& Table::reals(const std::string& c) const { return typed_column<double>(*this, c, "float64"); }
const std::vector<int64_t>& Table::ints(const std::string& c) const { return typed_column<int64_t>(*this, c, "int64"); }
const std::vector<std::string>& Table::texts(const std::string& c) const {
    return typed_column<std::string>(*this, c, "text");
}

const char* run_status_name(RunStatus s) {
    switch (s) {
        case RunStatus::Running: return "running";
        case RunStatus::Incomplete: return "incomplete";
        case RunStatus::Complete: return "complete";
        case RunStatus::Failed: return "failed";
        case RunStatus::Cancelled: return "cancelled";
    }
    return "?";
}

std::string iso8601_utc_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm {};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

RunInfo current_run_info(const std::string& kind, const std::string& command_line, uint64_t seed) {
    RunInfo info;
    info.kind = kind;
    info.command_line = command_line;
    info.seed = seed;
    info.quench_version = quench_version();
    info.git_hash = quench_git_hash();
    return info;
}

const Table& RunData::table(const std::string& name) const {
    const auto it = tables.find(name);
    if (it == tables.end()) throw Error(where + ": no table '" + name + "'");
    return it->second;
}

const Array& RunData::array(const std::string& name) const {
    const auto it = arrays.find(name);
    if (it == arrays.end()) throw Error(where + ": no array '" + name + "'");
    return it->second;
}

const AttrValue& RunData::attr(const std::string& name) const {
    const auto it = attrs.find(name);
    if (it == attrs.end()) throw Error(where + ": no attribute '" + name + "'");
    return it->second;
}

}  // namespace quench
