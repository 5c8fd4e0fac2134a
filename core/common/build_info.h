#pragma once
// What build produced a result: recorded with every run so a number can be traced to its code.

namespace quench {

const char* quench_version();   // the project version, "0.1.0"
const char* quench_git_hash();  // the commit at build time, with "-dirty" for uncommitted changes; "unknown" outside git

}  // namespace quench
