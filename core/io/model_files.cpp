#include "io/model_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/read_file.h"
#include "model/llama_model.h"

namespace quench {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTokenizerFiles = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                                  "special_tokens_map.json", "generation_config.json"};

void fsync_dir(const fs::path& dir) {
    // Persists the rename itself; some filesystems refuse fsync on directories, which is harmless.
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace

const std::vector<std::string>& exported_file_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n = {"config.json", "model.safetensors"};
        n.insert(n.end(), kTokenizerFiles.begin(), kTokenizerFiles.end());
        return n;
    }();
    return names;
}

StagedDirectory::StagedDirectory(const std::string& final_dir, bool replace, const std::string& source_dir)
    : replace_(replace) {
    fs::path target = fs::path(final_dir).lexically_normal();
    if (target.has_filename() == false) target = target.parent_path();  // "out/" -> "out"
    final_ = target.string();
    const std::string name = target.filename().string();
    if (name.empty() || name == "." || name == "..") throw Error(final_dir + ": not a usable output directory name");
    const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();

    std::error_code ec;
    if (fs::exists(target, ec)) {
        if (!fs::is_directory(target, ec)) throw Error(final_ + ": exists and is not a directory");
        if (!source_dir.empty() && fs::equivalent(target, source_dir, ec))
            throw Error(final_ + ": is the source model's directory; export to another directory");
        if (!replace_) throw Error(final_ + ": already exists (choose another output or allow replacing it)");
        const auto& allowed = exported_file_names();
        for (const auto& e : fs::directory_iterator(target, ec)) {
            const std::string n = e.path().filename().string();
            if (!e.is_regular_file() || std::find(allowed.begin(), allowed.end(), n) == allowed.end())
                throw Error(final_ + ": holds '" + n +
                            "', which is not an exported model file; refusing to replace it");
        }
        if (ec) throw Error(final_ + ": cannot list the existing directory: " + ec.message());
    }
    // A sibling of the target, so the final rename stays on one filesystem and is atomic.
    std::string tmpl = (parent / ("." + name + ".tmp-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data()))
        throw Error(sys_error(final_, "cannot create a temporary directory in " + parent.string(), errno));
    tmp_ = tmpl;
    ::chmod(tmp_.c_str(), 0755);  // mkdtemp makes 0700; a model directory is normally readable by all
}

StagedDirectory::~StagedDirectory() {
    if (committed_ || tmp_.empty()) return;
    std::error_code ec;
    fs::remove_all(tmp_, ec);  // best effort: never throw from a destructor
}

void StagedDirectory::commit() {
    if (committed_) throw Error(final_ + ": directory committed twice");
    std::error_code ec;
    const bool exists = fs::exists(final_, ec);
    if (exists && !replace_) throw Error(final_ + ": appeared while exporting; not replacing it");
    if (!exists) {
        if (::rename(tmp_.c_str(), final_.c_str()) != 0)
            throw Error(sys_error(final_, "cannot rename " + tmp_ + " into place", errno));
    } else if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
        fs::remove_all(tmp_, ec);  // tmp_ now names the old export
    } else {
        // No atomic exchange on this filesystem: move the old one aside, then the new one in. A crash
        // between the two renames leaves both under hidden names, never a partial directory.
        const std::string old = tmp_ + ".old";
        if (::rename(final_.c_str(), old.c_str()) != 0)
            throw Error(sys_error(final_, "cannot move the existing directory aside", errno));
        if (::rename(tmp_.c_str(), final_.c_str()) != 0) {
            const int err = errno;
            ::rename(old.c_str(), final_.c_str());
            throw Error(sys_error(final_, "cannot rename " + tmp_ + " into place", err));
        }
        fs::remove_all(old, ec);
    }
    committed_ = true;
    const fs::path parent = fs::path(final_).parent_path();
    fsync_dir(parent.empty() ? fs::path(".") : parent);
}

std::vector<std::string> copy_tokenizer_files(const std::string& src_dir, const std::string& dst_dir) {
    std::vector<std::string> copied;
    for (const std::string& name : kTokenizerFiles) {
        const fs::path src = fs::path(src_dir) / name;
        std::error_code ec;
        if (!fs::is_regular_file(src, ec)) continue;
        write_file_atomic((fs::path(dst_dir) / name).string(), read_file(src.string()));
        copied.push_back(name);
    }
    return copied;
}

std::string source_config_text(const LlamaModel& model) {
    const fs::path path = fs::path(model.dir()) / "config.json";
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return read_file(path.string());
    return model.config().to_json_text();
}

uint64_t write_model_directory(const std::string& out_dir, const ExportOptions& options,
                               const std::string& source_dir, const std::string& config_text,
                               const SafetensorsStream& tensors, ProgressSink& progress, double start) {
    progress.check();
    StagedDirectory out(out_dir, options.replace, source_dir);
    try {
        write_file_atomic(out.file("config.json"), config_text);
        copy_tokenizer_files(source_dir, out.path());
        SubProgress writing(progress, start, 1.0);
        const uint64_t bytes = tensors.write(out.file("model.safetensors"), &writing);
        progress.check();
        out.commit();
        return bytes;
    } catch (const Cancelled&) {
        throw;
    } catch (const Error& e) {  // the inner message names the staging path; the user asked for out_dir
        throw Error(out_dir + ": export failed: " + e.what());
    }
}

}  // namespace quench
