#include "common/build_info.h"

namespace quench {

extern const char* const kGitHash;  // generated at build time (cmake/QuenchGitHash.cmake)

const char* quench_version() { return QUENCH_VERSION; }
const char* quench_git_hash() { return kGitHash; }

}  // namespace quench
