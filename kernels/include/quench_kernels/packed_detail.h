#pragma once
// Internals the packed CPU kernels share (not part of the kernel API): row threading, the CPU path choice,
// bounds-safe reads of the packed code stream, the int8 activation rounding, and the projected kernels
// (LiftQuant, LC-QAT) split at their code grid so that every grid GEMV can finish them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "quench_kernels/packed_common.h"

namespace quench::kernels {
struct GridView;
struct LiftView;
struct LatticeView;
}  // namespace quench::kernels

namespace quench::kernels::detail {

// body(i) for i in [0, n) on n threads of a pool kept for the process (worker_pool.cpp); the calling thread
// runs i = 0. Returns when every chunk is done; rethrows the first exception a chunk threw.
void run_chunks(int n, const std::function<void(int)>& body);

// Splits [0, n) into contiguous chunks, one per thread; the calling thread takes the first chunk.
template <typename F>
void parallel_rows(int64_t n, int threads, F&& body) {
    int t = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    t = static_cast<int>(std::min<int64_t>(t, std::max<int64_t>(n, 1)));
    if (t <= 1) {
        body(int64_t{0}, n);
        return;
    }
    const int64_t chunk = (n + t - 1) / t;
    run_chunks(t, [&](int i) {
        const int64_t b = i * chunk, e = std::min(n, b + chunk);
        if (b < e) body(b, e);
    });
}

// Resolves CpuPath::Auto; std::invalid_argument when Avx2 is forced on a CPU without it.
bool use_avx2(const CpuOptions& opt);

// Eight bytes of the stream starting at `byte`, zero-filled past its end (little-endian, as packed).
inline uint64_t load_u64(const uint8_t* p, int64_t nbytes, int64_t byte) {
    uint64_t v = 0;
    if (byte + 8 <= nbytes)
        std::memcpy(&v, p + byte, 8);
    else if (byte < nbytes)
        std::memcpy(&v, p + byte, static_cast<std::size_t>(nbytes - byte));
    return v;
}

// Code i of an LSB-first stream of `bits`-wide codes (bits <= 16).
inline uint32_t code_at(const uint8_t* p, int64_t nbytes, int bits, int64_t i) {
    const int64_t bit = i * bits;
    return static_cast<uint32_t>(load_u64(p, nbytes, bit >> 3) >> (bit & 7)) & ((1u << bits) - 1u);
}

// Trit i of a stream of 5 trits per byte, first trit least significant (core's pack_trits).
inline uint32_t trit_at(const uint8_t* p, int64_t i) {
    static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
    return (p[i / 5] / kPow3[i % 5]) % 3u;
}

// The int8 activation step of packed_int8.h for a block of n values: d = max|x| / 127 and id = 127 / max|x|
// (0 and 0 for an all-zero block). int8_code rounds x * id half away from zero; |x * id| <= 127 plus an ulp,
// so the clamp only catches that ulp.
struct Int8Step {
    float d, id;
};
inline Int8Step int8_step(const float* x, int64_t n) {
    float amax = 0.f;
    for (int64_t c = 0; c < n; ++c) amax = std::max(amax, std::fabs(x[c]));
    return {amax / 127.0f, amax > 0.f ? 127.0f / amax : 0.f};
}
inline int8_t int8_code(float x, float id) {
    const float v = x * id;
    const int q = static_cast<int>(v + (v < 0.f ? -0.5f : 0.5f));
    return static_cast<int8_t>(std::max(-127, std::min(127, q)));
}

// A grid level as (a c - o) m with integer a, o (packed_int8.h): AsymInt 1, zero code, 1; SymInt 1,
// 2^(bits-1), 1; Binary 2, 1, 1; Seq 2, 3, 0.25; Ternary 1, 1, fp32(2/3); Unsigned 1, 0, 1. For AsymInt, o is
// each group's zero code and int_level gives 0.
struct IntLevel {
    int32_t a = 1, o = 0;
    float m = 1;
};
IntLevel int_level(const GridView& w);

// The grid GEMV a projected kernel ends in: y = W p for the code grid g over projected inputs p.
using GridGemv = std::function<void(const GridView& g, const float* p, float* y, int64_t batch, const CpuOptions& opt)>;

// LiftQuant's GEMV (packed_liftquant.h) with its sign-code grid GEMV done by `gemv`: x through the transforms
// and M into p [batch, (cols / d) D], then gemv(lift_sign_grid(w), p). `by_rows` sums each projection over i
// in the outer loop (vectorised over k; the int8 paths round p anyway); otherwise sums run over i in order,
// as the exact fp32 GEMV keeps them. Projection threaded with opt.threads.
void lift_gemv_via(const LiftView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt, bool by_rows,
                   const GridGemv& gemv);
// The sign codes as the binary grid GEMV over p reads them (one group per row, one scale per row).
GridView lift_sign_grid(const LiftView& w);

// LC-QAT's GEMV (packed_lattice.h) with its 2-bit code grid GEMV done by `gemv`.
void lattice_gemv_via(const LatticeView& w, const float* x, float* y, int64_t batch, const CpuOptions& opt,
                      const GridGemv& gemv);
// The codes as the unsigned 2-bit grid over the projected inputs, one group per row, scales `ones` (fp16 1.0
// per row: the row scale sv is applied after the output Hadamard).
GridView lattice_code_grid(const LatticeView& w, const uint16_t* ones);

// Unnormalised Walsh-Hadamard butterflies, in place, over each block of v[0, n) (block a power of two
// dividing n): for h = 1, 2, .., block / 2 the pair (a, b) = (v[i], v[i + h]) becomes (a + b, a - b), the
// sums and differences core's hadamard_blocks computes, so the results are bit-identical to it.
void fwht_blocks(float* v, int64_t n, int64_t block);

// fp32(sqrt(block)): what hadamard_blocks divides by (a double scalar applied to an fp32 tensor).
float hadamard_norm(int64_t block);

}  // namespace quench::kernels::detail
