#include "analysis/text_data.h"

#include <utf8proc.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/read_file.h"
#include "model/tokenizer.h"

namespace quench {

namespace {

// Throws naming the file and the byte offset of the first invalid UTF-8 sequence in text (a prefix of it).
void check_utf8(const std::string& path, const std::string& text) {
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    utf8proc_ssize_t pos = 0, n = static_cast<utf8proc_ssize_t>(text.size());
    while (pos < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate(p + pos, n - pos, &cp);
        if (len < 0) throw Error(path + ": not valid UTF-8 at byte " + std::to_string(pos));
        pos += len;
    }
}

std::vector<int32_t> finish(const Tokenizer& tok, const std::string& path, std::vector<int32_t> ids, bool add_bos,
                            int64_t max_tokens) {
    if (add_bos && tok.bos_id() >= 0) ids.insert(ids.begin(), tok.bos_id());
    if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<std::size_t>(max_tokens));
    if (ids.empty()) throw Error(path + ": text produced no tokens");
    return ids;
}

}  // namespace

std::string read_text_file(const std::string& path) {
    std::string text = read_file(path, "text file");
    if (text.empty()) throw Error(path + ": text is empty");
    check_utf8(path, text);
    return text;
}

std::vector<int32_t> tokenize_text_file(const Tokenizer& tok, const std::string& path, bool add_bos,
                                        int64_t max_tokens) {
    // With a token limit only a prefix of the file is read and tokenized: a user may point --calib at a
    // pretraining shard of gigabytes to take 16k tokens from it. The prefix ends after a newline and is
    // doubled until it yields kMargin tokens more than asked for: only the last few tokens before a cut can
    // depend on the text after it (a word or a merge the cut splits), so the first max_tokens are exactly
    // those of the whole file.
    constexpr int64_t kMargin = 256;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open text file");
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    std::size_t want = max_tokens > 0 ? std::max<std::size_t>(std::size_t(64) << 10, std::size_t(max_tokens) * 16) : 0;
    std::string buf;
    while (max_tokens > 0 && !ec && want < size) {
        const std::size_t have = buf.size();
        buf.resize(want);
        in.read(buf.data() + have, static_cast<std::streamsize>(want - have));
        buf.resize(have + static_cast<std::size_t>(in.gcount()));
        if (in.bad()) throw Error(path + ": read error");
        if (buf.size() < want) break;  // the file ended early (it changed): tokenize it whole
        const std::size_t cut = buf.rfind('\n');
        if (cut != std::string::npos && cut > 0) {
            const std::string prefix = buf.substr(0, cut + 1);
            check_utf8(path, prefix);
            std::vector<int32_t> ids = tok.encode(prefix, /*add_special=*/false);
            if (static_cast<int64_t>(ids.size()) >= max_tokens + kMargin) return finish(tok, path, std::move(ids), add_bos, max_tokens);
        }
        want *= 2;
    }
    return finish(tok, path, tok.encode(read_text_file(path), /*add_special=*/false), add_bos, max_tokens);
}

}  // namespace quench
