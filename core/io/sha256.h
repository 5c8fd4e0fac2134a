#pragma once
// SHA-256 digests for provenance (model, tokenizer and data files). Computed by OpenSSL's libcrypto rather
// than by hand: it is well kept and uses the CPU's SHA extensions, so hashing a multi-gigabyte checkpoint
// runs at disk speed.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace quench {

class ProgressSink;

// Streaming digest: update() any number of times, then hex() once.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, std::size_t n);
    std::string hex();  // 64 lowercase hex digits; finishes the digest (further calls throw)

private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(const void* data, std::size_t n);
inline std::string sha256_hex(const std::string& bytes) { return sha256_hex(bytes.data(), bytes.size()); }

// Streams the file in 4 MiB blocks; *bytes (when given) receives its size. Throws quench::Error naming the
// file when it cannot be read, quench::Cancelled when progress says so.
std::string sha256_file(const std::string& path, ProgressSink* progress = nullptr, uint64_t* bytes = nullptr);

}  // namespace quench
