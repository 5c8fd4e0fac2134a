// Bit packing round-trips every width, matches a hand-packed layout, and rejects bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "quant/bitpack.h"

using namespace quench;

TEST(BitPack, RoundTripsEveryWidthAndOddCounts) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    for (int bits = 1; bits <= 16; ++bits)
        for (int64_t n : {1, 7, 8, 9, 1001}) {
            auto codes = torch::randint(int64_t(1) << bits, {n}, gen);
            auto packed = pack_bits(codes, bits);
            EXPECT_EQ(packed.numel(), packed_bytes(n, bits));
            EXPECT_TRUE(torch::equal(unpack_bits(packed, bits, n), codes)) << bits << " " << n;
        }
}

TEST(BitPack, LsbFirstLayout) {
    // 3-bit codes 1,2,3,4,5 -> bits (LSB first) 100 010 110 001 101 -> bytes 0b11010001, 0b00010110 ...
    auto packed = pack_bits(torch::tensor({1, 2, 3, 4, 5}), 3);
    ASSERT_EQ(packed.numel(), 2);
    const uint8_t b0 = 1 | (2 << 3) | ((3 & 3) << 6);
    const uint8_t b1 = (3 >> 2) | (4 << 1) | (5 << 4);
    EXPECT_EQ(packed[0].item<uint8_t>(), b0);
    EXPECT_EQ(packed[1].item<uint8_t>(), b1);
}

TEST(BitPack, Errors) {
    EXPECT_THROW(pack_bits(torch::tensor({4}), 2), Error);
    EXPECT_THROW(pack_bits(torch::tensor({-1}), 2), Error);
    EXPECT_THROW(unpack_bits(torch::zeros({1}, torch::kUInt8), 4, 3), Error);
}
