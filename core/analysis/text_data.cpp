#include "analysis/text_data.h"

#include <utf8proc.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "model/tokenizer.h"

namespace quench {

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open text file");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(path + ": read error");
    std::string text = ss.str();
    if (text.empty()) throw Error(path + ": text is empty");
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    utf8proc_ssize_t pos = 0, n = static_cast<utf8proc_ssize_t>(text.size());
    while (pos < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate(p + pos, n - pos, &cp);
        if (len < 0) throw Error(path + ": not valid UTF-8 at byte " + std::to_string(pos));
        pos += len;
    }
    return text;
}

std::vector<int32_t> tokenize_text_file(const Tokenizer& tok, const std::string& path, bool add_bos,
                                        int64_t max_tokens) {
    const std::string text = read_text_file(path);
    std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false);
    if (add_bos && tok.bos_id() >= 0) ids.insert(ids.begin(), tok.bos_id());
    if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<std::size_t>(max_tokens));
    if (ids.empty()) throw Error(path + ": text produced no tokens");
    return ids;
}

}  // namespace quench
