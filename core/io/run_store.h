#pragma once
// The HDF5 run store: one file per project ("study.h5") holding many runs with their provenance and
// results, readable by h5dump/h5py without Quench (layout: docs/hdf5-schema.md).
//
// A run in progress lives in its own sidecar file ("study.h5.d/run-0007.partial.h5"), written in short
// open-write-close steps while the writer holds a lock, so another process (the GUI) can watch it and a
// killed writer cannot damage the project file. finish()/fail()/cancel() copy the run into the project
// file in one short step and remove the sidecar. Readers list the project's runs plus the sidecars:
// "running" while the writer's lock is held, "incomplete" once it is gone.
//
// The vocabulary is generic so later analyses (sensitivity, allocation, QAT) need no schema change:
// a run has attributes (text or numbers), tables (equal-length columns), float arrays (1-D/2-D) and
// quantized tensors. Typed mappings of Quench's result structs are in jobs/run_records.h.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace quench {

constexpr int64_t kRunStoreSchemaVersion = 1;

// Read back, an unsigned 64-bit attribute above int64's range (a seed) comes back as its exact decimal text.
using AttrValue = std::variant<int64_t, double, std::string>;
using Attrs = std::map<std::string, AttrValue>;

// One table column: float64, int64 or UTF-8 text.
struct Column {
    std::string name;
    std::variant<std::vector<double>, std::vector<int64_t>, std::vector<std::string>> values;
    std::string units;  // optional ("nats", "dB", "s"); stored as the column's "units" attribute
    std::size_t size() const;
};

struct Table {
    std::vector<Column> columns;  // in order; every column has the same length
    Attrs attrs;
    std::string where;  // set by readers ("study.h5: run-0003: table 'layers'") for error messages

    Table& add(const std::string& name, std::vector<double> v, const std::string& units = "");
    Table& add(const std::string& name, std::vector<int64_t> v, const std::string& units = "");
    Table& add(const std::string& name, std::vector<std::string> v, const std::string& units = "");
    std::size_t rows() const { return columns.empty() ? 0 : columns.front().size(); }
    bool has(const std::string& column) const;
    // Typed access; throw quench::Error naming the column when it is missing or of another type.
    const Column& column(const std::string& name) const;
    const std::vector<double>& reals(const std::string& column) const;
    const std::vector<int64_t>& ints(const std::string& column) const;
    const std::vector<std::string>& texts(const std::string& column) const;
};

// A named float array, row-major. single: stored as float32 (values must be float-representable).
struct Array {
    std::vector<int64_t> shape;  // 1 or 2 dimensions
    std::vector<double> values;
    bool single = false;
    Attrs attrs;
};

// One part of a quantized tensor as raw little-endian bytes (the torch-free form of quant/QuantPart).
struct StoredPart {
    std::string name, role;  // role: part_role_name() ("codes", "scale", ...)
    std::string dtype;       // uint8 int8 int16 int32 int64 float16 bfloat16 float32 float64
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
    int64_t bits = 0;  // storage cost the codec declares
    bool shared = false;
};

struct StoredTensor {
    std::string codec;  // canonical CodecSpec string
    int64_t rows = 0, cols = 0;
    std::vector<StoredPart> parts;
};

// Stored: running, complete, failed, cancelled. Incomplete is derived: a run whose writer died.
enum class RunStatus { Running = 1, Incomplete, Complete, Failed, Cancelled };
const char* run_status_name(RunStatus s);

// Provenance recorded on every run.
struct RunInfo {
    std::string kind;          // what the run does: "quantize", "eval", "sensitivity", "allocate", "qat"
    std::string command_line;  // as typed (or the GUI's equivalent)
    uint64_t seed = 0;
    std::string quench_version, git_hash;  // current_run_info() fills them from common/build_info.h
    std::string started_utc;   // ISO-8601 UTC; begin_run() fills it when empty
    std::string finished_utc;  // set when the run is committed
};
RunInfo current_run_info(const std::string& kind, const std::string& command_line, uint64_t seed = 0);
std::string iso8601_utc_now();  // "2025-01-31T12:00:00Z"

struct RunSummary {
    std::string id;  // "run-0007"
    RunStatus status = RunStatus::Incomplete;
    RunInfo info;
    std::string updated_utc;  // the last write step: a watcher's sign of life
    std::string message;      // failed: the error; incomplete/busy sidecars: why, and the sidecar path
    bool in_sidecar = false;  // still in study.h5.d/ (running or incomplete)
};

// Everything of one run except tensor data (read those with RunStore::read_tensor).
struct RunData {
    RunSummary summary;
    Attrs attrs;  // every run attribute, provenance included
    std::map<std::string, Table> tables;
    std::map<std::string, Array> arrays;
    std::vector<std::string> tensors;  // layer names with a stored quantized tensor
    std::string where;                 // "study.h5: run-0003"

    // Throw quench::Error naming the file, the run and what is missing.
    const Table& table(const std::string& name) const;
    const Array& array(const std::string& name) const;
    const AttrValue& attr(const std::string& name) const;
    bool has_table(const std::string& name) const { return tables.count(name) != 0; }
    bool has_array(const std::string& name) const { return arrays.count(name) != 0; }
};

class RunWriter;

class RunStore {
public:
    // An existing project file; throws quench::Error naming it when missing, corrupt or not a run store.
    static RunStore open(const std::string& path);
    // Creates an empty project (atomically: a temporary renamed into place) when the file is absent.
    static RunStore create_or_open(const std::string& path);

    const std::string& path() const { return path_; }
    std::string sidecar_dir() const { return path_ + ".d"; }

    // Every run, sorted by id: the project file's runs and the sidecars (running or incomplete).
    std::vector<RunSummary> runs() const;
    // One run, from the project file or its sidecar. Throws naming a missing run, or "busy" when a
    // sidecar stays locked by its writer for longer than a few seconds.
    RunData read(const std::string& id) const;
    StoredTensor read_tensor(const std::string& id, const std::string& layer) const;

    // Starts run "run-NNNN" (one above every id in use) in a new sidecar.
    RunWriter begin_run(const RunInfo& info) const;

private:
    explicit RunStore(std::string path) : path_(std::move(path)) {}
    std::string path_;
};

class RunWriter {
public:
    RunWriter(RunWriter&&) noexcept;
    RunWriter& operator=(RunWriter&&) noexcept;
    ~RunWriter();  // without finish()/fail()/cancel(): the sidecar stays and is listed as incomplete

    const std::string& id() const;
    const std::string& sidecar_path() const;

    // Each call is one short step (lock, open, write, flush, close); a name written again is replaced.
    // Names are non-empty and hold no '/'. Throw quench::Error naming the sidecar and the object.
    void set_attr(const std::string& name, const AttrValue& value);
    void set_attrs(const Attrs& attrs);
    void write_table(const std::string& name, const Table& table);
    void write_array(const std::string& name, const Array& array);
    void write_array(const std::string& name, const std::vector<float>& values, std::vector<int64_t> shape = {},
                     const Attrs& attrs = {});
    void write_array(const std::string& name, const std::vector<double>& values, std::vector<int64_t> shape = {},
                     const Attrs& attrs = {});
    // Shared parts equal to one already written in this run are stored once (HDF5 hard links).
    void write_tensor(const std::string& layer, const StoredTensor& tensor);

    // Copy the run into the project file with its final status and remove the sidecar. On failure (full
    // disk...) the project file keeps its earlier runs and the run stays in its sidecar, incomplete.
    void finish();
    void fail(const std::string& message);
    void cancel();
    bool committed() const;

private:
    friend class RunStore;
    struct State;
    explicit RunWriter(std::unique_ptr<State> state);
    void commit(RunStatus status, const std::string& message);
    std::unique_ptr<State> s_;
};

}  // namespace quench
