#include "model/sentencepiece_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>

#include "common/error.h"

namespace quench {
namespace {

constexpr const char* kModuleName = "libquench_sentencepiece.so";

std::string exe_dir() {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) return ".";
    std::string path(buf, static_cast<std::size_t>(n));
    return path.substr(0, path.rfind('/'));
}

using CreateFn = SentencePieceBackend* (*)();

// Where the module may be: an explicit override, next to the executable, the install layout, the build tree.
CreateFn find_module() {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("QUENCH_SENTENCEPIECE_MODULE")) candidates.emplace_back(env);
    const std::string dir = exe_dir();
    candidates.push_back(dir + "/" + kModuleName);
    candidates.push_back(dir + "/../lib/quench/" + kModuleName);
#ifdef QUENCH_MODULE_BUILD_DIR
    candidates.push_back(std::string(QUENCH_MODULE_BUILD_DIR) + "/" + kModuleName);
#endif
    std::string tried;
    for (const auto& path : candidates) {
        if (access(path.c_str(), R_OK) != 0) {
            tried += (tried.empty() ? "" : ", ") + path;
            continue;
        }
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (!handle) throw Error(path + ": cannot load the SentencePiece module: " + dlerror());
        auto fn = reinterpret_cast<CreateFn>(dlsym(handle, "quench_sentencepiece_create"));
        if (!fn) throw Error(path + ": not a Quench SentencePiece module (no quench_sentencepiece_create)");
        return fn;  // never dlclose: backends' vtables live in the module
    }
    throw Error(std::string("SentencePiece support module ") + kModuleName + " not found (tried " + tried +
                "); set QUENCH_SENTENCEPIECE_MODULE to its path");
}

}  // namespace

std::unique_ptr<SentencePieceBackend> make_sentencepiece_backend() {
    static std::once_flag once;
    static CreateFn create = nullptr;
    static std::string failure;
    std::call_once(once, [] {
        try {
            create = find_module();
        } catch (const Error& e) {
            failure = e.what();
        }
    });
    if (!create) throw Error(failure);
    return std::unique_ptr<SentencePieceBackend>(create());
}

}  // namespace quench
