#pragma once
// An HF checkpoint directory's weights: one model.safetensors, or shards listed by
// model.safetensors.index.json. Resolves tied aliases: names mapped to another tensor in a file's
// __metadata__ (the real tinystories model maps model.embed_tokens.weight -> lm_head.weight), and
// lm_head.weight <-> model.embed_tokens.weight when config.json says tie_word_embeddings.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace quench {

class Checkpoint {
public:
    // dir holds model.safetensors or model.safetensors.index.json. tie_word_embeddings comes from config.json.
    static Checkpoint open(const std::string& dir, bool tie_word_embeddings = false);

    bool contains(const std::string& name) const;
    // Resolves aliases; throws quench::Error naming the directory and the tensor when it is absent.
    const TensorInfo& info(const std::string& name) const;
    // The tensor in its stored dtype (F32, F16 or BF16) on CPU, wrapped without a copy when its data is
    // aligned (the tensor keeps the mapping alive). Other dtypes throw, naming the file and the tensor.
    at::Tensor tensor(const std::string& name) const;
    // As tensor(), converted to fp32 (a copy unless stored as F32).
    at::Tensor tensor_f32(const std::string& name) const;
    // Drops the tensor's pages from this process's resident memory (mapped_file.h forget_pages); the next use
    // maps them again from the page cache. Streamed passes call it on each block's weights after the block.
    void forget(const std::string& name) const;
    // The tensor's bytes as stored (dtype, shape and size from info()), inside the mapping and valid while
    // this checkpoint lives: exporters copy tensors unchanged from here, without a second copy in memory.
    const uint8_t* stored_bytes(const std::string& name) const;
    std::vector<std::string> names() const;  // stored names plus resolvable aliases, sorted
    std::size_t stored_count() const { return entries_.size(); }  // tensors actually stored in the files
    const std::vector<std::string>& files() const { return file_paths_; }
    uint64_t total_bytes() const;  // sum of the shard file sizes
    const std::string& dir() const { return dir_; }

private:
    struct Entry { std::size_t file; const TensorInfo* info; };
    Entry resolve(const std::string& name) const;

    std::string dir_;
    std::vector<std::string> file_paths_;
    std::vector<std::shared_ptr<SafetensorsFile>> files_;
    std::map<std::string, Entry> entries_;
    std::map<std::string, std::string> aliases_;
};

}  // namespace quench
