#pragma once
// UTF-8 helpers for the tokenizers. Validation follows Unicode Table 3-7 (no overlongs, no surrogates,
// nothing above U+10FFFF), which is what Rust's str (and so Hugging Face tokenizers) accepts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace quench::utf8 {

inline constexpr std::size_t kValid = static_cast<std::size_t>(-1);

// Offset of the first byte that does not start a well-formed sequence, or kValid.
std::size_t first_invalid(std::string_view s);

// Throws quench::Error("text is not valid UTF-8 at byte N") when s is malformed.
void validate(std::string_view s);

// Length in bytes of the sequence starting with lead byte b (1 for ASCII and for stray bytes, so that
// iteration over already-validated text never stalls).
inline std::size_t seq_len(unsigned char b) {
    if (b < 0xC0) return 1;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    return 4;
}

// Decodes the code point at s[i] of validated text and advances i past it.
char32_t next(std::string_view s, std::size_t& i);

void append(std::string& out, char32_t cp);

// Bytes to text the way Rust's String::from_utf8_lossy does it: every maximal ill-formed subpart becomes
// one U+FFFD. Decoders need this so partial byte tokens render exactly as Hugging Face renders them.
std::string lossy(std::string_view bytes);

// Unicode White_Space, i.e. Rust's char::is_whitespace (used by Strip, lstrip/rstrip, WhitespaceSplit).
bool is_whitespace(char32_t cp);

}  // namespace quench::utf8
