#include "io/hdf5_objects.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "io/sha256.h"

namespace quench::h5 {

namespace {

constexpr std::size_t kChunkBytes = 512 << 10;   // target chunk size of chunked datasets
constexpr std::size_t kCompressFrom = 16 << 10;  // datasets this big or bigger are chunked and deflated

// Attributes stay in the object header ("compact") up to this many per object. HDF5 1.10.8's H5Ocopy
// crashes copying text attributes out of dense attribute storage, which it switches to after 8 by
// default, and the commit copies every run with H5Ocopy.
constexpr unsigned kMaxAttrs = 1024;

void keep_attrs_compact(hid_t create_plist) { H5Pset_attr_phase_change(create_plist, kMaxAttrs, kMaxAttrs - 1); }

}  // namespace

void check_name(const std::string& where, const std::string& what, const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        throw Error(where + ": invalid " + what + " name '" + name + "' (must be non-empty, without '/')");
}

// ---------------------------------------------------------------------------------------------- groups

bool has_link(hid_t loc, const std::string& name) {
    const htri_t r = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
    if (r < 0) h5::take_error();
    return r > 0;
}

Handle open_group(hid_t loc, const std::string& name, const std::string& where, const std::string& what) {
    if (!has_link(loc, name)) throw Error(where + ": no " + what);
    return Handle(h5::id(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), where, "cannot open " + what));
}

Handle make_group(hid_t loc, const std::string& name, const std::string& where) {
    if (has_link(loc, name)) h5::ok(H5Ldelete(loc, name.c_str(), H5P_DEFAULT), where, "cannot replace");
    const Handle gcpl(H5Pcreate(H5P_GROUP_CREATE));
    keep_attrs_compact(gcpl);
    return Handle(h5::id(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT), where,
                            "cannot create group '" + name + "'"));
}

namespace {

Handle child_group(hid_t loc, const std::string& name, const std::string& where) {  // opens or creates
    if (has_link(loc, name)) return open_group(loc, name, where, "group '" + name + "'");
    return make_group(loc, name, where);
}

// Names of an object's attributes or a group's links, in name order. Collected first because C callbacks
// must not throw.
std::vector<std::string> attr_names(hid_t obj) {
    std::vector<std::string> names;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
                [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
                    static_cast<std::vector<std::string>*>(out)->push_back(name);
                    return 0;
                },
                &names);
    return names;
}

}  // namespace

std::vector<std::string> link_names(hid_t group) {
    std::vector<std::string> names;
    H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
                [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
                    static_cast<std::vector<std::string>*>(out)->push_back(name);
                    return 0;
                },
                &names);
    return names;
}

// ---------------------------------------------------------------------------------------------- attributes

namespace {

Handle utf8_type() {
    Handle t(H5Tcopy(H5T_C_S1));
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

Handle new_attr(hid_t obj, const std::string& name, hid_t type, hid_t space, const std::string& where) {
    if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
    return Handle(h5::id(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), where,
                            "cannot create attribute '" + name + "'"));
}

}  // namespace

void put_attr(hid_t obj, const std::string& name, const AttrValue& v, const std::string& where) {
    const Handle space(H5Screate(H5S_SCALAR));
    herr_t rc = 0;
    if (const auto* i = std::get_if<int64_t>(&v)) {
        rc = H5Awrite(new_attr(obj, name, H5T_STD_I64LE, space, where), H5T_NATIVE_INT64, i);
    } else if (const auto* d = std::get_if<double>(&v)) {
        rc = H5Awrite(new_attr(obj, name, H5T_IEEE_F64LE, space, where), H5T_NATIVE_DOUBLE, d);
    } else {
        const Handle type = utf8_type();
        const char* p = std::get<std::string>(v).c_str();
        rc = H5Awrite(new_attr(obj, name, type, space, where), type, &p);
    }
    h5::ok(rc, where, "cannot write attribute '" + name + "'");
}

void put_attr_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& where) {
    const Handle space(H5Screate(H5S_SCALAR));
    h5::ok(H5Awrite(new_attr(obj, name, H5T_STD_U64LE, space, where), H5T_NATIVE_UINT64, &v), where,
              "cannot write attribute '" + name + "'");
}

namespace {

void put_attr_texts(hid_t obj, const std::string& name, const std::vector<std::string>& v, const std::string& where) {
    const hsize_t n = v.size();
    const Handle space(H5Screate_simple(1, &n, nullptr));
    const Handle type = utf8_type();
    std::vector<const char*> p;
    for (const auto& s : v) p.push_back(s.c_str());
    h5::ok(H5Awrite(new_attr(obj, name, type, space, where), type, p.data()), where,
              "cannot write attribute '" + name + "'");
}

// Strings of a string attribute or dataset, variable- or fixed-length (h5py writes both).
std::vector<std::string> read_texts(hid_t obj, bool is_attr, const std::string& where) {
    const Handle type(is_attr ? H5Aget_type(obj) : H5Dget_type(obj));
    const Handle space(is_attr ? H5Aget_space(obj) : H5Dget_space(obj));
    if (H5Tget_class(type) != H5T_STRING) throw Error(where + ": not text");
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    std::vector<std::string> out;
    if (H5Tis_variable_str(type) > 0) {
        Handle mem(H5Tcopy(H5T_C_S1));
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        std::vector<char*> buf(static_cast<std::size_t>(n), nullptr);
        const herr_t rc = is_attr ? H5Aread(obj, mem, buf.data())
                                  : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
        h5::ok(rc, where, "cannot read text");
        for (char* s : buf) out.emplace_back(s ? s : "");
        H5Dvlen_reclaim(mem, space, H5P_DEFAULT, buf.data());
    } else {
        const std::size_t size = H5Tget_size(type);
        std::vector<char> buf(static_cast<std::size_t>(n) * size + 1, '\0');
        const herr_t rc = is_attr ? H5Aread(obj, type, buf.data())
                                  : H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
        h5::ok(rc, where, "cannot read text");
        for (hssize_t i = 0; i < n; ++i) {
            const char* s = buf.data() + i * size;
            out.emplace_back(s, strnlen(s, size));
        }
    }
    return out;
}

}  // namespace

Handle open_attr(hid_t obj, const std::string& name, const std::string& where) {
    if (H5Aexists(obj, name.c_str()) <= 0) throw Error(where + ": missing attribute '" + name + "'");
    return Handle(h5::id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), where, "cannot open attribute '" + name + "'"));
}

namespace {

AttrValue get_attr(hid_t obj, const std::string& name, const std::string& where) {
    const Handle a = open_attr(obj, name, where);
    const Handle type(H5Aget_type(a)), space(H5Aget_space(a));
    const std::string what = where + ": attribute '" + name + "'";
    if (H5Sget_simple_extent_npoints(space) != 1) throw Error(what + " is not a single value");
    switch (H5Tget_class(type)) {
        case H5T_INTEGER: {
            if (H5Tget_sign(type) == H5T_SGN_NONE && H5Tget_size(type) == 8) {
                uint64_t u = 0;
                h5::ok(H5Aread(a, H5T_NATIVE_UINT64, &u), what, "cannot read");
                // Above int64's range (a 64-bit seed) the exact value is kept as decimal text.
                if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::to_string(u);
                return static_cast<int64_t>(u);
            }
            int64_t v = 0;
            h5::ok(H5Aread(a, H5T_NATIVE_INT64, &v), what, "cannot read");
            return v;
        }
        case H5T_FLOAT: {
            double v = 0;
            h5::ok(H5Aread(a, H5T_NATIVE_DOUBLE, &v), what, "cannot read");
            return v;
        }
        case H5T_STRING: return read_texts(a, true, what).at(0);
        default: throw Error(what + " has an unsupported type (only integers, floats and text)");
    }
}

}  // namespace

std::string get_text(hid_t obj, const std::string& name, const std::string& where, const std::string& fallback) {
    if (H5Aexists(obj, name.c_str()) <= 0) return fallback;
    const AttrValue v = get_attr(obj, name, where);
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    throw Error(where + ": attribute '" + name + "' is not text");
}

int64_t get_int(hid_t obj, const std::string& name, const std::string& where) {
    const AttrValue v = get_attr(obj, name, where);
    if (const auto* i = std::get_if<int64_t>(&v)) return *i;
    throw Error(where + ": attribute '" + name + "' is not an integer");
}

// Every attribute except the store's own bookkeeping ones (skip).
Attrs get_attrs(hid_t obj, const std::string& where, const std::vector<std::string>& skip) {
    Attrs out;
    for (const auto& name : attr_names(obj))
        if (std::find(skip.begin(), skip.end(), name) == skip.end()) out[name] = get_attr(obj, name, where);
    return out;
}

void put_attrs(hid_t obj, const Attrs& attrs, const std::string& where) {
    H5O_info_t info{};
    h5::ok(H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS), where, "cannot count attributes");
    std::size_t count = info.num_attrs;
    for (const auto& [name, v] : attrs) {
        check_name(where, "attribute", name);
        if (H5Aexists(obj, name.c_str()) <= 0) ++count;
    }
    if (count > kMaxAttrs) throw Error(where + ": more than " + std::to_string(kMaxAttrs) + " attributes");
    for (const auto& [name, v] : attrs) put_attr(obj, name, v, where);
}

// ---------------------------------------------------------------------------------------------- datasets

namespace {

// Chunked with shuffle + deflate once the data is big enough to gain from it (deflate_level > 0); chunks
// span whole rows.
Handle make_dataset(hid_t loc, const std::string& name, hid_t file_type, const std::vector<int64_t>& shape,
                    const std::string& where, int deflate_level) {
    if (has_link(loc, name)) h5::ok(H5Ldelete(loc, name.c_str(), H5P_DEFAULT), where, "cannot replace");
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    const Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(int(dims.size()), dims.data(), nullptr));
    const Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    keep_attrs_compact(dcpl);
    const std::size_t elem = H5Tget_size(file_type);
    hsize_t numel = 1;
    for (hsize_t d : dims) numel *= d;
    if (deflate_level > 0 && !dims.empty() && numel * elem >= kCompressFrom && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        std::vector<hsize_t> chunk = dims;
        const hsize_t row_elems = numel / dims[0];
        if (row_elems * elem >= kChunkBytes) {  // one row is already big: split the last dimension
            chunk.assign(dims.size(), 1);
            chunk.back() = std::min<hsize_t>(dims.back(), std::max<hsize_t>(1, kChunkBytes / elem));
        } else {
            chunk[0] = std::min<hsize_t>(dims[0], std::max<hsize_t>(1, kChunkBytes / (row_elems * elem)));
        }
        H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
        if (elem > 1) H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, unsigned(deflate_level));
    }
    return Handle(h5::id(H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), where,
                            "cannot create dataset '" + name + "'"));
}

void write_all(hid_t ds, hid_t mem_type, const void* data, const std::string& where) {
    h5::ok(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where, "cannot write data");
}

std::vector<int64_t> shape_of(hid_t ds) {
    const Handle space(H5Dget_space(ds));
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
    if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    return {dims.begin(), dims.end()};
}

int64_t numel_of(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace

// ---------------------------------------------------------------------------------------------- tables

namespace {

const std::vector<std::string> kTableKeys = {"kind", "rows", "columns"};

}  // namespace

void write_table_to(hid_t run, const std::string& name, const Table& t, const std::string& where) {
    const std::string tw = where + ": table '" + name + "'";
    std::vector<std::string> names;
    for (const auto& c : t.columns) {
        check_name(tw, "column", c.name);
        if (std::find(names.begin(), names.end(), c.name) != names.end()) throw Error(tw + ": column '" + c.name + "' given twice");
        if (c.size() != t.rows())
            throw Error(tw + ": column '" + c.name + "' has " + std::to_string(c.size()) + " rows, '" +
                        t.columns.front().name + "' has " + std::to_string(t.rows()));
        names.push_back(c.name);
    }
    const Handle tables = child_group(run, "tables", where);
    const Handle g = make_group(tables, name, tw);
    put_attr(g, "kind", std::string("table"), tw);
    put_attr(g, "rows", static_cast<int64_t>(t.rows()), tw);
    put_attr_texts(g, "columns", names, tw);
    for (const auto& [k, v] : t.attrs)
        if (std::find(kTableKeys.begin(), kTableKeys.end(), k) != kTableKeys.end())
            throw Error(tw + ": attribute '" + k + "' is reserved");
    put_attrs(g, t.attrs, tw);
    for (const auto& c : t.columns) {
        const std::string cw = tw + ": column '" + c.name + "'";
        const std::vector<int64_t> shape{static_cast<int64_t>(c.size())};
        Handle ds;
        if (const auto* d = std::get_if<std::vector<double>>(&c.values)) {
            ds = make_dataset(g, c.name, H5T_IEEE_F64LE, shape, cw, 4);
            write_all(ds, H5T_NATIVE_DOUBLE, d->data(), cw);
        } else if (const auto* i = std::get_if<std::vector<int64_t>>(&c.values)) {
            ds = make_dataset(g, c.name, H5T_STD_I64LE, shape, cw, 4);
            write_all(ds, H5T_NATIVE_INT64, i->data(), cw);
        } else {
            const auto& s = std::get<std::vector<std::string>>(c.values);
            const Handle type = utf8_type();
            ds = make_dataset(g, c.name, type, shape, cw, 4);
            std::vector<const char*> p;
            for (const auto& x : s) p.push_back(x.c_str());
            write_all(ds, type, p.data(), cw);
        }
        if (!c.units.empty()) put_attr(ds, "units", c.units, cw);
    }
}

Table read_table_from(hid_t tables, const std::string& name, const std::string& where) {
    Table t;
    t.where = where + ": table '" + name + "'";
    const Handle g = open_group(tables, name, where, "table '" + name + "'");
    t.attrs = get_attrs(g, t.where, kTableKeys);
    std::vector<std::string> names =
        H5Aexists(g, "columns") > 0 ? read_texts(open_attr(g, "columns", t.where), true, t.where) : link_names(g);
    for (const auto& col : names) {
        const std::string cw = t.where + ": column '" + col + "'";
        if (!has_link(g, col)) throw Error(t.where + ": missing column '" + col + "'");
        const Handle ds(h5::id(H5Dopen2(g, col.c_str(), H5P_DEFAULT), cw, "cannot open"));
        const std::vector<int64_t> shape = shape_of(ds);
        if (shape.size() != 1) throw Error(cw + ": expected 1-D, found shape " + shape_text(shape));
        Column c;
        c.name = col;
        const Handle type(H5Dget_type(ds));
        const std::size_t n = static_cast<std::size_t>(shape[0]);
        switch (H5Tget_class(type)) {
            case H5T_FLOAT: {
                std::vector<double> v(n);
                if (n) h5::ok(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), cw, "cannot read");
                c.values = std::move(v);
                break;
            }
            case H5T_INTEGER: {
                std::vector<int64_t> v(n);
                if (n) h5::ok(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), cw, "cannot read");
                c.values = std::move(v);
                break;
            }
            case H5T_STRING: c.values = read_texts(ds, false, cw); break;
            default: throw Error(cw + ": unsupported column type (only float64, int64 and text)");
        }
        if (H5Aexists(ds, "units") > 0) c.units = get_text(ds, "units", cw);
        if (!t.columns.empty() && c.size() != t.rows())
            throw Error(cw + ": has " + std::to_string(c.size()) + " rows, the table " + std::to_string(t.rows()));
        t.columns.push_back(std::move(c));
    }
    return t;
}

// ---------------------------------------------------------------------------------------------- arrays

void write_array_to(hid_t run, const std::string& name, const Array& a, const std::string& where) {
    const std::string aw = where + ": array '" + name + "'";
    const std::vector<int64_t> shape = a.shape.empty() ? std::vector<int64_t>{int64_t(a.values.size())} : a.shape;
    if (shape.size() > 2 || numel_of(shape) != static_cast<int64_t>(a.values.size()))
        throw Error(aw + ": shape " + shape_text(shape) + " does not fit " + std::to_string(a.values.size()) +
                    " values (1-D or 2-D)");
    const Handle arrays = child_group(run, "arrays", where);
    Handle ds;
    if (a.single) {
        const std::vector<float> f(a.values.begin(), a.values.end());
        ds = make_dataset(arrays, name, H5T_IEEE_F32LE, shape, aw, 4);
        write_all(ds, H5T_NATIVE_FLOAT, f.data(), aw);
    } else {
        ds = make_dataset(arrays, name, H5T_IEEE_F64LE, shape, aw, 4);
        write_all(ds, H5T_NATIVE_DOUBLE, a.values.data(), aw);
    }
    put_attrs(ds, a.attrs, aw);
}

Array read_array_from(hid_t arrays, const std::string& name, const std::string& where) {
    const std::string aw = where + ": array '" + name + "'";
    if (!has_link(arrays, name)) throw Error(where + ": no array '" + name + "'");
    const Handle ds(h5::id(H5Dopen2(arrays, name.c_str(), H5P_DEFAULT), aw, "cannot open"));
    const Handle type(H5Dget_type(ds));
    Array a;
    a.shape = shape_of(ds);
    if (H5Tget_class(type) != H5T_FLOAT || a.shape.empty() || a.shape.size() > 2)
        throw Error(aw + ": expected a 1-D or 2-D float dataset, found shape " + shape_text(a.shape));
    a.single = H5Tget_size(type) <= 4;
    a.values.resize(static_cast<std::size_t>(numel_of(a.shape)));
    if (!a.values.empty())
        h5::ok(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data()), aw, "cannot read");
    a.attrs = get_attrs(ds, aw);
    return a;
}

// ---------------------------------------------------------------------------------------------- tensors

namespace {

// HDF5 has no predefined 16-bit floats; these are the IEEE half and bfloat16 layouts (h5py reads the
// former as numpy float16).
Handle half_type(bool bf16) {
    Handle t(H5Tcopy(H5T_IEEE_F32LE));
    if (bf16) {
        H5Tset_fields(t, 15, 7, 8, 0, 7);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 127);
    } else {
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
    }
    return t;
}

Handle part_type(const std::string& dtype, const std::string& where) {
    static const std::map<std::string, hid_t> kStd = {
        {"uint8", H5T_STD_U8LE},   {"int8", H5T_STD_I8LE},     {"int16", H5T_STD_I16LE}, {"int32", H5T_STD_I32LE},
        {"int64", H5T_STD_I64LE},  {"float32", H5T_IEEE_F32LE}, {"float64", H5T_IEEE_F64LE}};
    if (dtype == "float16" || dtype == "bfloat16") return half_type(dtype == "bfloat16");
    const auto it = kStd.find(dtype);
    if (it == kStd.end()) throw Error(where + ": unknown dtype '" + dtype + "'");
    return Handle(H5Tcopy(it->second));
}

std::string part_dtype(hid_t type, const std::string& where) {
    const std::size_t size = H5Tget_size(type);
    if (H5Tget_class(type) == H5T_INTEGER) {
        const bool sign = H5Tget_sign(type) == H5T_SGN_2;
        if (!sign && size == 1) return "uint8";
        if (sign && (size == 1 || size == 2 || size == 4 || size == 8)) return "int" + std::to_string(size * 8);
    } else if (H5Tget_class(type) == H5T_FLOAT) {
        if (size == 2) {
            std::size_t spos, epos, esize, mpos, msize;
            H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize);
            if (esize == 5 && msize == 10) return "float16";
            if (esize == 8 && msize == 7) return "bfloat16";
        }
        if (size == 4) return "float32";
        if (size == 8) return "float64";
    }
    throw Error(where + ": unsupported dtype (HDF5 class " + std::to_string(int(H5Tget_class(type))) + ", " +
                std::to_string(size) + " bytes)");
}

const std::vector<std::string> kTensorKeys = {"kind", "codec", "rows", "cols", "parts"};
const std::vector<std::string> kPartKeys = {"role", "bits", "shared"};

}  // namespace

// shared_parts: content key -> object path of a shared part already in this run, to link instead of copy.
void write_tensor_to(hid_t file, hid_t run, const std::string& run_path, const std::string& layer,
                     const StoredTensor& t, std::map<std::string, std::string>& shared_parts, const std::string& where) {
    const std::string tw = where + ": tensor '" + layer + "'";
    const Handle tensors = child_group(run, "tensors", where);
    const Handle g = make_group(tensors, layer, tw);
    put_attr(g, "kind", std::string("quantized_tensor"), tw);
    put_attr(g, "codec", t.codec, tw);
    put_attr(g, "rows", t.rows, tw);
    put_attr(g, "cols", t.cols, tw);
    std::vector<std::string> names;
    for (const auto& p : t.parts) {
        const std::string pw = tw + ": part '" + p.name + "'";
        check_name(tw, "part", p.name);
        if (std::find(names.begin(), names.end(), p.name) != names.end()) throw Error(pw + ": given twice");
        names.push_back(p.name);
        const Handle type = part_type(p.dtype, pw);
        const int64_t expect = numel_of(p.shape) * static_cast<int64_t>(H5Tget_size(type));
        if (static_cast<int64_t>(p.bytes.size()) != expect)
            throw Error(pw + ": " + std::to_string(p.bytes.size()) + " bytes for shape " + shape_text(p.shape) + " of " +
                        p.dtype + " (expected " + std::to_string(expect) + ")");
        const std::string key =
            p.shared ? p.name + "|" + p.dtype + "|" + shape_text(p.shape) + "|" + sha256_hex(p.bytes.data(), p.bytes.size())
                     : "";
        const auto seen = p.shared ? shared_parts.find(key) : shared_parts.end();
        // The first holder may have been rewritten since; then the part is written afresh.
        const bool linkable = seen != shared_parts.end() && H5Oexists_by_name(file, seen->second.c_str(), H5P_DEFAULT) > 0;
        h5::take_error();  // a missing intermediate group leaves an error on the stack
        if (linkable) {
            h5::ok(H5Lcreate_hard(file, seen->second.c_str(), g, p.name.c_str(), H5P_DEFAULT, H5P_DEFAULT), pw,
                      "cannot link the shared part");
            continue;  // same object: its attributes are already there
        }
        // Bit-packed codes are close to incompressible (deflate level 1 saves 4-13% on RTN 2-4 bit codes at
        // about 40 MB/s, a minute for a 7B model), so they are stored plain; scales and tables compress.
        const Handle ds = make_dataset(g, p.name, type, p.shape, pw, p.role == "codes" ? 0 : 4);
        if (!p.bytes.empty()) write_all(ds, type, p.bytes.data(), pw);
        put_attr(ds, "role", p.role, pw);
        put_attr(ds, "bits", p.bits, pw);
        put_attr(ds, "shared", int64_t(p.shared), pw);
        if (p.shared) shared_parts[key] = run_path + "/tensors/" + layer + "/" + p.name;
    }
    put_attr_texts(g, "parts", names, tw);
}

StoredTensor read_tensor_from(hid_t run, const std::string& layer, const std::string& where) {
    const std::string tw = where + ": tensor '" + layer + "'";
    const Handle tensors = open_group(run, "tensors", where, "quantized tensor '" + layer + "'");
    const Handle g = open_group(tensors, layer, where, "quantized tensor '" + layer + "'");
    StoredTensor t;
    t.codec = get_text(g, "codec", tw);
    t.rows = get_int(g, "rows", tw);
    t.cols = get_int(g, "cols", tw);
    for (const auto& name : read_texts(open_attr(g, "parts", tw), true, tw)) {
        const std::string pw = tw + ": part '" + name + "'";
        if (!has_link(g, name)) throw Error(tw + ": missing part '" + name + "'");
        const Handle ds(h5::id(H5Dopen2(g, name.c_str(), H5P_DEFAULT), pw, "cannot open"));
        StoredPart p;
        p.name = name;
        const Handle type(H5Dget_type(ds));
        p.dtype = part_dtype(type, pw);
        p.shape = shape_of(ds);
        p.bytes.resize(static_cast<std::size_t>(numel_of(p.shape)) * H5Tget_size(type));
        // Little-endian in memory whatever the file says, as StoredPart promises.
        const Handle mem(H5Tcopy(type));
        H5Tset_order(mem, H5T_ORDER_LE);
        if (!p.bytes.empty())
            h5::ok(H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.bytes.data()), pw, "cannot read");
        p.role = get_text(ds, "role", pw);
        p.bits = get_int(ds, "bits", pw);
        p.shared = get_int(ds, "shared", pw) != 0;
        t.parts.push_back(std::move(p));
    }
    return t;
}

}  // namespace quench::h5
