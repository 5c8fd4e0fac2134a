#include "model/checkpoint.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/json_file.h"
#include "model/mapped_file.h"

namespace quench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kLmHead = "lm_head.weight";
constexpr const char* kEmbed = "model.embed_tokens.weight";

// Reads model.safetensors.index.json and returns its weight_map (tensor name -> shard file name).
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
    const json index = read_json_file(index_path);
    if (!index.is_object()) throw Error(index_path + ": not a JSON object");
    const auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) throw Error(index_path + ": weight_map is missing or not an object");
    std::map<std::string, std::string> map;
    for (const auto& [tensor, shard] : wm->items()) {
        if (!shard.is_string()) throw Error(index_path + ": weight_map entry for tensor '" + tensor + "' is not a string");
        map[tensor] = shard.get<std::string>();
    }
    return map;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir, bool tie_word_embeddings) {
    Checkpoint ck;
    ck.dir_ = dir;
    const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
    const fs::path single_path = fs::path(dir) / "model.safetensors";

    // Registers every tensor a file stores; a name stored twice would make the loaded model depend on
    // shard order, so it is an error.
    const auto add_file = [&ck](const std::string& path) {
        const std::size_t idx = ck.files_.size();
        ck.files_.push_back(std::make_shared<SafetensorsFile>(path));
        ck.file_paths_.push_back(path);
        for (const TensorInfo& t : ck.files_[idx]->tensors()) {
            const auto [it, inserted] = ck.entries_.emplace(t.name, Entry{idx, &t});
            if (!inserted)
                throw Error(path + ": tensor '" + t.name + "' is also defined in " + ck.file_paths_[it->second.file]);
        }
    };

    std::error_code ec;  // an unreadable path counts as absent and ends in the error below
    if (fs::exists(index_path, ec)) {
        const std::string index = index_path.string();
        const auto weight_map = read_weight_map(index);
        std::map<std::string, std::size_t> shard_index;  // shard file name -> position in files_
        for (const auto& [tensor, shard] : weight_map) {
            if (shard_index.count(shard)) continue;
            const fs::path shard_path = fs::path(dir) / shard;
            if (!fs::exists(shard_path, ec))
                throw Error(index + ": shard '" + shard + "' (listed for tensor '" + tensor + "') does not exist");
            shard_index[shard] = ck.files_.size();
            add_file(shard_path.string());
        }
        for (const auto& [tensor, shard] : weight_map) {
            const SafetensorsFile& file = *ck.files_[shard_index.at(shard)];
            if (!file.find(tensor))
                throw Error(index + ": tensor '" + tensor + "' is listed in weight_map but missing from shard '" +
                            shard + "'");
        }
    } else if (fs::exists(single_path, ec)) {
        add_file(single_path.string());
    } else {
        throw Error("no model.safetensors or model.safetensors.index.json in " + dir);
    }

    // Writers that deduplicate tied weights store one tensor and record "<dropped name>": "<kept name>"
    // in __metadata__ (the real tinystories model does this for the embedding).
    for (const auto& file : ck.files_)
        for (const auto& [key, value] : file->metadata())
            if (!ck.entries_.count(key) && ck.entries_.count(value)) ck.aliases_[key] = value;

    if (tie_word_embeddings) {
        const bool has_head = ck.contains(kLmHead), has_embed = ck.contains(kEmbed);
        // Point at the stored tensor, not at a name that may itself be an alias: resolve() follows one hop.
        if (has_head && !has_embed) ck.aliases_[kEmbed] = ck.info(kLmHead).name;
        if (has_embed && !has_head) ck.aliases_[kLmHead] = ck.info(kEmbed).name;
    }
    return ck;
}

Checkpoint::Entry Checkpoint::resolve(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
        const auto alias = aliases_.find(name);
        if (alias != aliases_.end()) it = entries_.find(alias->second);  // open() only aliases stored names
    }
    if (it == entries_.end()) throw Error(dir_ + ": tensor '" + name + "' is not in the checkpoint");
    return it->second;
}

bool Checkpoint::contains(const std::string& name) const { return entries_.count(name) || aliases_.count(name); }

const TensorInfo& Checkpoint::info(const std::string& name) const { return *resolve(name).info; }

at::Tensor Checkpoint::tensor_f32(const std::string& name) const {
    at::Tensor t = tensor(name);
    return t.scalar_type() == at::kFloat ? t : t.to(at::kFloat);
}

void Checkpoint::forget(const std::string& name) const {
    const Entry e = resolve(name);
    forget_pages(files_[e.file]->data(*e.info), e.info->nbytes());
}

at::Tensor Checkpoint::tensor(const std::string& name) const {
    const Entry e = resolve(name);
    const TensorInfo& t = *e.info;
    const std::shared_ptr<SafetensorsFile>& file = files_[e.file];

    at::ScalarType type;
    switch (t.dtype) {
        case DType::F32: type = at::kFloat; break;
        case DType::F16: type = at::kHalf; break;
        case DType::BF16: type = at::kBFloat16; break;
        default:
            throw Error(file->path() + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype) +
                        ", which is not a float type (F32, F16 or BF16)");
    }

    // The mapping is MAP_PRIVATE and writable, so handing torch a mutable pointer is safe: writes go to
    // private copy-on-write pages, never to the file.
    auto* src = const_cast<uint8_t*>(file->data(t));
    at::Tensor raw;
    if (reinterpret_cast<uintptr_t>(src) % dtype_size(t.dtype) == 0) {
        // Zero-copy view; the deleter owns a reference to the file so the mapping outlives the tensor.
        raw = at::from_blob(src, t.shape, [keep = file](void*) {}, at::TensorOptions().dtype(type));
    } else {
        // Safetensors does not require alignment; torch kernels assume it, so misaligned data is copied.
        raw = at::empty(t.shape, at::TensorOptions().dtype(type));
        std::memcpy(raw.data_ptr(), src, t.nbytes());
    }
    return raw;
}

const uint8_t* Checkpoint::stored_bytes(const std::string& name) const {
    const Entry e = resolve(name);
    return files_[e.file]->data(*e.info);
}

std::vector<std::string> Checkpoint::names() const {
    std::set<std::string> all;
    for (const auto& [name, entry] : entries_) all.insert(name);
    for (const auto& [alias, target] : aliases_) all.insert(alias);
    return {all.begin(), all.end()};
}

uint64_t Checkpoint::total_bytes() const {
    uint64_t total = 0;
    for (const auto& f : files_) total += f->file_size();
    return total;
}

}  // namespace quench
