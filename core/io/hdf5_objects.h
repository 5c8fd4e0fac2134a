#pragma once
// Reading and writing the run store's HDF5 objects: groups, attributes, datasets, and the table, array and
// quantized-tensor layouts of docs/hdf5-schema.md, on an open file or group. Split out of run_store.cpp,
// which keeps the file protocol (sidecars, locks, commit). Internal to core/io: includes <hdf5.h>.
#include <map>
#include <string>
#include <vector>

#include "io/hdf5_handle.h"
#include "io/run_store.h"

namespace quench::h5 {

// Object names are non-empty and hold no '/'; throws "<where>: invalid <what> name '<name>' ...".
void check_name(const std::string& where, const std::string& what, const std::string& name);

// ---------------------------------------------------------------------------------------------- groups
bool has_link(hid_t loc, const std::string& name);
Handle open_group(hid_t loc, const std::string& name, const std::string& where, const std::string& what);
// Creates group name, replacing whatever was linked there.
Handle make_group(hid_t loc, const std::string& name, const std::string& where);
// A group's link names, in name order.
std::vector<std::string> link_names(hid_t group);

// ---------------------------------------------------------------------------------------------- attributes
// Writing replaces an attribute of the same name.
void put_attr(hid_t obj, const std::string& name, const AttrValue& v, const std::string& where);
void put_attr_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& where);
// Checks the names and the per-object attribute limit before writing any.
void put_attrs(hid_t obj, const Attrs& attrs, const std::string& where);
Handle open_attr(hid_t obj, const std::string& name, const std::string& where);
// A text attribute, or fallback when it is absent.
std::string get_text(hid_t obj, const std::string& name, const std::string& where, const std::string& fallback = "");
int64_t get_int(hid_t obj, const std::string& name, const std::string& where);
// Every attribute except the store's own bookkeeping ones (skip).
Attrs get_attrs(hid_t obj, const std::string& where, const std::vector<std::string>& skip = {});

// ---------------------------------------------------------------------------------------------- run contents
// Written under run's "tables", "arrays" and "tensors" groups (created when missing). read_table_from and
// read_array_from take that group, read_tensor_from the run.
void write_table_to(hid_t run, const std::string& name, const Table& t, const std::string& where);
Table read_table_from(hid_t tables, const std::string& name, const std::string& where);
void write_array_to(hid_t run, const std::string& name, const Array& a, const std::string& where);
Array read_array_from(hid_t arrays, const std::string& name, const std::string& where);
// shared_parts: content key -> object path of a shared part already in this run, to link instead of copy.
void write_tensor_to(hid_t file, hid_t run, const std::string& run_path, const std::string& layer,
                     const StoredTensor& t, std::map<std::string, std::string>& shared_parts, const std::string& where);
StoredTensor read_tensor_from(hid_t run, const std::string& layer, const std::string& where);

}  // namespace quench::h5
