#pragma once
// Pieces every exported model directory is made of: the directory itself, built under a temporary sibling
// name and renamed into place only when complete; a model.safetensors streamed one tensor at a time (so
// an exporter never holds a second copy of the model); and the config and tokenizer files copied from
// the source model.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/safetensors_writer.h"  // SafetensorsStream

namespace quench {

class LlamaModel;
class ProgressSink;

// Options every exporter takes.
struct ExportOptions {
    bool replace = false;  // replace an earlier export in the target directory (see StagedDirectory)
};

// An output directory that appears under its final name complete or not at all. The constructor creates
// "<parent>/.<name>.tmp-XXXXXX"; commit() renames it to the final name; the destructor removes the
// temporary when commit() was never reached (error, cancellation).
//
// An existing target is refused unless `replace` is set. Even then only a directory holding nothing but
// files an exporter writes (config.json, model.safetensors, tokenizer files) is replaced, so a mistyped
// --out can never wipe an unrelated directory; the swap is atomic (renameat2 RENAME_EXCHANGE) where the
// filesystem supports it. The source model's own directory is never a valid target.
class StagedDirectory {
public:
    StagedDirectory(const std::string& final_dir, bool replace, const std::string& source_dir = "");
    ~StagedDirectory();
    StagedDirectory(const StagedDirectory&) = delete;
    StagedDirectory& operator=(const StagedDirectory&) = delete;

    const std::string& path() const { return tmp_; }  // where to write the files
    std::string file(const std::string& name) const { return tmp_ + "/" + name; }
    void commit();  // throws quench::Error naming the final directory

private:
    std::string final_, tmp_;
    bool replace_ = false, committed_ = false;
};

// Names of the files an exporter may write into a model directory (what StagedDirectory may replace).
const std::vector<std::string>& exported_file_names();

// Copies whichever of tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json and
// generation_config.json exist in src_dir; returns the names copied.
std::vector<std::string> copy_tokenizer_files(const std::string& src_dir, const std::string& dst_dir);

// The text of the model's config.json (its directory's file, or one generated from the parsed config when
// the model has none), to be amended by an exporter.
std::string source_config_text(const LlamaModel& model);

// The last step of every model export: config.json (config_text), the source model's tokenizer files and
// model.safetensors (from the stream) written into a staged out_dir, renamed into place when complete.
// Returns model.safetensors' size. Errors name out_dir; quench::Cancelled passes through and, like any
// error, leaves nothing under out_dir's name. Progress from `start` to 1 follows the tensor data.
uint64_t write_model_directory(const std::string& out_dir, const ExportOptions& options,
                               const std::string& source_dir, const std::string& config_text,
                               const SafetensorsStream& tensors, ProgressSink& progress, double start);

}  // namespace quench
