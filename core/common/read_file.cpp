#include "common/read_file.h"

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace quench {

std::string read_file(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open " + what);
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw Error(path + ": read failed");
    return text.str();
}

}  // namespace quench
