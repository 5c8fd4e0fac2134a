#pragma once
// The small non-cryptographic hashes Quench uses to name and seed things reproducibly on every platform:
// FNV-1a 64 over bytes (per-layer seeds, token-stream and shared-part fingerprints), splitmix64 (seed
// mixing, shuffles that need no generator state), and the fixed 16-digit hex form they are stored in
// (HDF5 readers without unsigned 64-bit support read text intact). SHA-256 (provenance) lives in io/sha256.h.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace quench {

// FNV-1a's prime with Quench's basis. The published 64-bit basis is 14695981039346656037; Quench has always
// started from 1469598103934665603 (that number without its last digit). Stored seeds, token fingerprints
// and shared-part names depend on it, so it stays; the algorithm is FNV-1a's (tested with both bases).
constexpr uint64_t kFnv1aOffset = 1469598103934665603ull;
constexpr uint64_t kFnv1aPublishedBasis = 14695981039346656037ull;
constexpr uint64_t kFnv1aPrime = 1099511628211ull;

inline uint64_t fnv1a(uint64_t h, const void* data, std::size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnv1aPrime;
    return h;
}

// Steele, Lea and Flood's splitmix64 finaliser of x + the golden-ratio increment.
inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// The splitmix64 sequence: returns the next value and advances the state.
inline uint64_t splitmix64_next(uint64_t& state) {
    const uint64_t out = splitmix64(state);
    state += 0x9E3779B97F4A7C15ull;
    return out;
}

inline std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace quench
