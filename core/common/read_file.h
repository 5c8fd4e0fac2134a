#pragma once
// A whole file read into memory with errors that name it: config and JSON files, text, tokenizer files.
#include <string>

namespace quench {

// Throws quench::Error "<path>: cannot open <what>" or "<path>: read failed".
std::string read_file(const std::string& path, const std::string& what = "for reading");

}  // namespace quench
