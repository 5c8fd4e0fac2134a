#pragma once
// RAII for HDF5 identifiers, and HDF5's error stack folded into one-line quench::Errors. HDF5's C API
// reports a failure as a negative return value plus a per-thread error stack that it prints to stderr by
// default; Quench silences the printing (per thread: the library is built thread-safe, which makes the
// setting thread-local) and puts the stack's most specific message into its own error instead.
// Internal to core/io: public headers never include <hdf5.h>.
#include <hdf5.h>

#include <string>
#include <utility>

#include "common/error.h"

namespace quench::h5 {

// Turns off HDF5's automatic error printing for the calling thread; cheap after the first call.
inline void quiet() {
    thread_local bool done = false;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        done = true;
    }
}

// The most specific description on the calling thread's error stack ("truncated file: eof = 96, ..."),
// then clears the stack. Empty when HDF5 recorded nothing. *lock_conflict (when given) tells whether HDF5
// failed to take its own file lock, i.e. another program has the file open for writing.
inline std::string take_error(bool* lock_conflict = nullptr) {
    struct Found {
        std::string innermost;
        bool lock = false;
    } found;
    H5Ewalk2(
        H5E_DEFAULT, H5E_WALK_UPWARD,
        [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
            auto* f = static_cast<Found*>(out);
            if (n == 0 && e->desc) f->innermost = e->desc;
            if (e->min_num == H5E_CANTLOCKFILE) f->lock = true;
            return 0;
        },
        &found);
    H5Eclear2(H5E_DEFAULT);
    for (char& c : found.innermost)
        if (c == '\n') c = ' ';  // some HDF5 messages embed a ctime() newline; errors are one line
    if (lock_conflict) *lock_conflict = found.lock;
    return found.innermost;
}

// Throws quench::Error "<where>: <what> (<HDF5's reason>)"; where names the file and the object path.
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
    const std::string why = take_error();
    throw Error(where + ": " + what + (why.empty() ? "" : " (" + why + ")"));
}

// An identifier from H5?open/H5?create, or the error.
inline hid_t id(hid_t id, const std::string& where, const std::string& what) {
    if (id < 0) fail(where, what);
    return id;
}

// A status from any other call, or the error.
inline void ok(herr_t rc, const std::string& where, const std::string& what) {
    if (rc < 0) fail(where, what);
}

// Owns one hid_t of any kind and closes it with the matching H5?close.
class Handle {
public:
    Handle() = default;
    explicit Handle(hid_t id) : id_(id) {}
    ~Handle() { reset(); }
    Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = std::exchange(o.id_, H5I_INVALID_HID);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;

    hid_t get() const { return id_; }
    operator hid_t() const { return id_; }  // NOLINT: handles pass straight into the C API
    bool valid() const { return id_ >= 0; }

    // Closes now and returns HDF5's result: closing a file flushes it, so writers must check this one.
    herr_t close() {
        const hid_t id = std::exchange(id_, H5I_INVALID_HID);
        if (id < 0) return 0;
        switch (H5Iget_type(id)) {
            case H5I_FILE: return H5Fclose(id);
            case H5I_GROUP: return H5Gclose(id);
            case H5I_DATASET: return H5Dclose(id);
            case H5I_DATASPACE: return H5Sclose(id);
            case H5I_DATATYPE: return H5Tclose(id);
            case H5I_ATTR: return H5Aclose(id);
            case H5I_GENPROP_LST: return H5Pclose(id);
            default: return -1;
        }
    }
    void reset() {
        if (id_ >= 0) {
            close();
            H5Eclear2(H5E_DEFAULT);  // a failed close in a destructor must not leak into the next error
        }
    }

private:
    hid_t id_ = H5I_INVALID_HID;
};

}  // namespace quench::h5
