#pragma once
// QAM-W's polar-coding baseline split and its Hadamard block choice, exposed for tests, reports and the kernel
// views; the codec itself is reached through the registry (make_codec("qamw:k=11,act_scale")).
#include <cstdint>

#include "quant/codec_spec.h"

namespace quench {

// The Hadamard block a [*, cols] weight uses: the largest power of two up to the spec's block= that divides
// cols (576 columns with block=128: 64). quench::Error naming the spec when cols is not even (pairs).
int64_t qamw_block(const CodecSpec& spec, int64_t cols);

// How polar coding spends k bits per pair: 2^amplitude_bits Rayleigh Lloyd-Max radii times 2^phase_bits
// uniform phases. pair_mse is the expected squared error per pair on N(0, I2) (halve it for per dimension).
struct PolarSplit {
    int amplitude_bits = 0;
    int phase_bits = 0;
    double pair_mse = 0;
};

// The split of k (>= 2) bits with the least expected error.
PolarSplit qamw_polar_split(int k);

}  // namespace quench
