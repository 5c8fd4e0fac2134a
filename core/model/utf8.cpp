#include "model/utf8.h"

#include "common/error.h"

namespace quench::utf8 {
namespace {

// Checks the sequence at p[0..n). Returns true when it is well formed; `used` is then its length, and
// otherwise the length of its maximal ill-formed subpart (at least 1), per Unicode Table 3-7.
bool scan(const unsigned char* p, std::size_t n, std::size_t& used) {
    const unsigned char b = p[0];
    used = 1;
    if (b < 0x80) return true;
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
        if (k >= n) return false;
        const unsigned char c = p[k];
        const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
        if (!ok) return false;
        used = k + 1;
    }
    return true;
}

}  // namespace

std::size_t first_invalid(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t i = 0;
    while (i < s.size()) {
        if (p[i] < 0x80) {  // ASCII fast path: most text is mostly ASCII
            ++i;
            continue;
        }
        std::size_t used = 0;
        if (!scan(p + i, s.size() - i, used)) return i;
        i += used;
    }
    return kValid;
}

void validate(std::string_view s) {
    const std::size_t bad = first_invalid(s);
    if (bad != kValid) throw Error("text is not valid UTF-8 at byte " + std::to_string(bad));
}

char32_t next(std::string_view s, std::size_t& i) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::size_t len = seq_len(b);
    if (len == 1 || i + len > s.size()) {
        ++i;
        return b;
    }
    char32_t cp = b & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += len;
    return cp;
}

void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string lossy(std::string_view bytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    std::string out;
    out.reserve(bytes.size());
    std::size_t i = 0;
    while (i < bytes.size()) {
        std::size_t used = 0;
        if (scan(p + i, bytes.size() - i, used))
            out.append(bytes.data() + i, used);
        else
            out += "\xEF\xBF\xBD";
        i += used;
    }
    return out;
}

bool is_whitespace(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

}  // namespace quench::utf8
