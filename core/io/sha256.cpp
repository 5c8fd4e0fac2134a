#include "io/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/progress.h"

namespace quench {

struct Sha256::Ctx {
    EVP_MD_CTX* md = nullptr;
    bool finished = false;
    ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
    ctx_->md = EVP_MD_CTX_new();
    if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
        throw Error("sha256: OpenSSL could not start a SHA-256 digest");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t n) {
    if (ctx_->finished) throw Error("sha256: update after the digest was finished");
    if (n && EVP_DigestUpdate(ctx_->md, data, n) != 1) throw Error("sha256: OpenSSL digest update failed");
}

std::string Sha256::hex() {
    if (ctx_->finished) throw Error("sha256: digest already finished");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_->md, digest, &len) != 1) throw Error("sha256: OpenSSL digest final failed");
    ctx_->finished = true;
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 15];
    }
    return out;
}

std::string sha256_hex(const void* data, std::size_t n) {
    Sha256 h;
    h.update(data, n);
    return h.hex();
}

std::string sha256_file(const std::string& path, ProgressSink* progress, uint64_t* bytes) {
    ProgressSink& sink = progress ? *progress : null_progress();
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(path + ": cannot open for hashing: " + std::strerror(errno));
    std::fseek(f, 0, SEEK_END);
    const long total = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    Sha256 h;
    std::vector<unsigned char> buf(4 << 20);
    uint64_t done = 0;
    for (;;) {
        if (sink.cancelled()) {
            std::fclose(f);
            throw Cancelled();
        }
        const std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
        if (n) h.update(buf.data(), n);
        done += n;
        sink.report(total > 0 ? double(done) / double(total) : 1.0, "hashing " + path);
        if (n < buf.size()) break;
    }
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed) throw Error(path + ": read failed while hashing: " + std::strerror(err));
    if (bytes) *bytes = done;
    return h.hex();
}

}  // namespace quench
