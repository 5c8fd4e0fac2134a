#pragma once
// The boundary between quench_core and libsentencepiece.
//
// Why a plugin: Debian's libsentencepiece embeds its own copy of protobuf-lite 3.14 and exports those
// symbols, while LibTorch links the system libprotobuf 3.21. Linked into one process, the two copies
// interpose and the program crashes during static initialisation. So libsentencepiece is only ever
// loaded through the small module libquench_sentencepiece.so, opened with RTLD_LOCAL | RTLD_DEEPBIND so
// it binds to its own protobuf and never to LibTorch's. Calls cross the boundary through this vtable only.
#include <memory>
#include <string>
#include <vector>

namespace quench {

class SentencePieceBackend {
public:
    virtual ~SentencePieceBackend() = default;
    // Each returns an empty string on success or the library's error message.
    virtual std::string load(const std::string& model_path) = 0;
    virtual std::string encode(const std::string& text, std::vector<int>* ids) const = 0;
    virtual std::string decode(const std::vector<int>& ids, std::string* text) const = 0;
    virtual int piece_size() const = 0;
    virtual int bos_id() const = 0;
    virtual int eos_id() const = 0;
    virtual bool is_control(int id) const = 0;
    virtual bool is_unknown(int id) const = 0;
    virtual std::string id_to_piece(int id) const = 0;
    virtual int piece_to_id(const std::string& piece) const = 0;
};

// Loads the module (once per process) and creates a backend; throws quench::Error naming the paths tried.
std::unique_ptr<SentencePieceBackend> make_sentencepiece_backend();

}  // namespace quench

extern "C" quench::SentencePieceBackend* quench_sentencepiece_create();
