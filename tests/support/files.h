#pragma once
// Whole-file reads and writes and directory listings, for the tests that check what was written to disk.
#include <filesystem>
#include <string>
#include <vector>

namespace quench::test {

// The file's bytes; "" when it cannot be opened.
std::string read_bytes(const std::string& path);

// The file's bytes, with a test failure naming it when it cannot be opened: a missing data file must not pass
// for an empty text.
std::string read_required(const std::string& path);

// Creates or truncates path and writes bytes (NULs included).
void write_bytes(const std::string& path, const std::string& bytes);

// The names of dir's entries, sorted.
std::vector<std::string> entries(const std::filesystem::path& dir);

}  // namespace quench::test
