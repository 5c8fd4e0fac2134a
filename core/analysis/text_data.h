#pragma once
// Evaluation and calibration text: read, validated and tokenized once.
#include <cstdint>
#include <string>
#include <vector>

namespace quench {

class Tokenizer;

// Reads a UTF-8 text file whole. Throws quench::Error naming the file when it cannot be read, is empty,
// or is not valid UTF-8 (with the byte offset of the first bad sequence).
std::string read_text_file(const std::string& path);

// Tokenizes a text file. add_bos prepends the tokenizer's BOS (when it has one) once, at the start.
// max_tokens > 0 truncates the result, and then only as much of the file as those tokens need is read
// (the tokens are the whole file's first max_tokens all the same; bytes past what was read are not checked).
std::vector<int32_t> tokenize_text_file(const Tokenizer& tok, const std::string& path, bool add_bos,
                                        int64_t max_tokens = 0);

}  // namespace quench
