#pragma once
// Quench's result structs as run-store records (table, column and array names: docs/hdf5-schema.md):
// model and data provenance with sha256 digests, the per-layer quantize table, KL and perplexity reports
// (with the per-token KL vector) and quantized tensors. Readers return the structs the writers took, so
// every record round-trips exactly.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/run_store.h"

namespace quench {

class LlamaModel;
class ProgressSink;
struct KlReport;
struct LayerResult;
struct PerplexityResult;
struct QuantizeResult;
struct QuantizedTensor;

// The one way a job records itself in a project file, shared by quench-cli and the GUI: the run begins
// before the work (another process sees it running; begun gets its id at once), job gets its writer
// (nullptr when project is empty), and the run is committed complete when job returns, marked cancelled
// on quench::Cancelled or failed with the message on any other exception, which is rethrown. A failure to
// record that end (a full disk) never hides the job's own error; it leaves the run incomplete. Returns the
// run id ("" without a project).
std::string run_recorded(const std::string& project, const RunInfo& info, const std::function<void(RunWriter*)>& job,
                         const std::function<void(const std::string& id)>& begun = {});

// argv as one line a POSIX shell would split back into the same arguments.
std::string command_line_text(int argc, const char* const* argv);

struct FileDigest {
    std::string path;  // relative to the model directory for model files, as given for data files
    uint64_t bytes = 0;
    std::string sha256;
};

struct ModelProvenance {
    std::string path;          // the model directory, absolute
    std::string architecture;  // "LlamaForCausalLM", ...
    std::vector<FileDigest> files;
};

// Digests config.json, the safetensors index and shards, and whichever tokenizer files are present
// (tokenizer.json, tokenizer.model, tokenizer_config.json). Throws quench::Error naming an unreadable
// file, quench::Cancelled when progress says so.
ModelProvenance model_provenance(const LlamaModel& model, ProgressSink* progress = nullptr);
// The same for a directory and file names relative to it.
ModelProvenance model_provenance(const std::string& dir, const std::string& architecture,
                                 const std::vector<std::string>& files, ProgressSink* progress = nullptr);

struct DataProvenance {
    std::string role;  // "calib", "eval", ...
    FileDigest file;
    int64_t tokens = 0;    // tokens used, after any --max-tokens cut
    std::string protocol;  // EvalProtocol::describe() for evaluation text; empty otherwise
};
DataProvenance data_provenance(const std::string& role, const std::string& path, int64_t tokens,
                               const std::string& protocol = "", ProgressSink* progress = nullptr);

// Run attributes model_path, model_architecture and table "model_files".
void write_model_provenance(RunWriter& run, const ModelProvenance& model);
ModelProvenance read_model_provenance(const RunData& run);
// Table "data", one row per file.
void write_data_provenance(RunWriter& run, const std::vector<DataProvenance>& data);
std::vector<DataProvenance> read_data_provenance(const RunData& run);

// Table "layers" (one row per quantized layer, plan order); with_tensors also stores each layer's
// QuantizedTensor under tensors/<layer name>.
void write_quantize_result(RunWriter& run, const QuantizeResult& result, bool with_tensors = false);
std::vector<LayerResult> read_layer_results(const RunData& run);

// Table <name> (one row) and, when the report has it, array <name>_per_token (float32, nats).
void write_kl_report(RunWriter& run, const KlReport& report, const std::string& name = "kl");
KlReport read_kl_report(const RunData& run, const std::string& name = "kl");
// Table <name> (one row).
void write_perplexity(RunWriter& run, const PerplexityResult& result, const std::string& name = "perplexity");
PerplexityResult read_perplexity(const RunData& run, const std::string& name = "perplexity");

// QuantizedTensor <-> the store's torch-free form. Throw quench::Error naming the part with a dtype or
// role the other side does not know.
StoredTensor to_stored(const QuantizedTensor& q);
QuantizedTensor from_stored(const StoredTensor& t);

}  // namespace quench
