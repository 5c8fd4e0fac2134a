#include "common/error.h"

#include <cstring>

namespace quench {

std::string sys_error(const std::string& path, const std::string& what, int err) {
    return path + ": " + what + ": " + std::strerror(err);
}

}  // namespace quench
