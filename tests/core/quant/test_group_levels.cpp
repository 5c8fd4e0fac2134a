// group_levels: for scalar-grid codecs the levels of a group are exactly its code range decoded with its
// scale and zero, and every weight core dequantizes in that group is one of them; other codecs list the
// row's distinct dequantized values; thinning keeps both ends; out-of-range rows and groups are errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "quant/codec.h"
#include "quant/group_levels.h"
#include "support/errors.h"

using namespace quench;

namespace {

QuantizedTensor quantize_for_levels(const std::string& spec, int64_t rows, int64_t cols) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    const auto W = torch::randn({rows, cols}, gen) * 0.02;
    const auto x = torch::randn({4 * cols, cols}, gen);
    const CalibStats calib{x.t().matmul(x) / static_cast<double>(4 * cols), torch::rand({cols}, gen) + 0.5};
    return make_codec(spec)->quantize(W, {&calib, 1, nullptr});
}

bool has_level(const std::vector<double>& v, double x) { return std::binary_search(v.begin(), v.end(), x); }

}  // namespace

TEST(GroupLevels, GridLevelsCoverEveryDequantizedWeightOfTheGroup) {
    for (const auto& [spec, levels] : std::vector<std::pair<std::string, std::size_t>>{
             {"rtn:b=4,g=32", 16}, {"rtn:b=3,g=64,sym", 8}, {"paretoq:b=2", 4}, {"gptq:b=2,g=32", 4}}) {
        const QuantizedTensor q = quantize_for_levels(spec, 6, 128);
        const int64_t g = group_columns(q);
        EXPECT_EQ(g, spec.find("paretoq") != std::string::npos ? 128 : spec.find("g=64") != std::string::npos ? 64 : 32) << spec;
        const auto W = make_codec(q.spec)->dequantize(q).to(torch::kDouble);
        for (int64_t row : {0, 5})
            for (int64_t group = 0; group < 128 / g; ++group) {
                const GroupLevels l = group_levels(q, row, group, 256);
                EXPECT_TRUE(l.grid) << spec;
                EXPECT_EQ(l.values.size(), levels) << spec;
                EXPECT_TRUE(std::is_sorted(l.values.begin(), l.values.end()));
                const auto w = W[row].narrow(0, group * g, g).contiguous();
                for (int64_t c = 0; c < g; ++c)
                    EXPECT_TRUE(has_level(l.values, w[c].item<double>()))
                        << spec << " row " << row << " group " << group;
            }
    }
}

TEST(GroupLevels, OtherCodecsListTheRowsDistinctValuesThinnedByRank) {
    const QuantizedTensor q = quantize_for_levels("liftquant:D=16,d=8", 4, 64);
    EXPECT_EQ(group_columns(q), 64);
    const auto row = make_codec(q.spec)->dequantize(q)[2].to(torch::kDouble);
    const auto uniq = std::get<0>(at::_unique(row));
    const GroupLevels all = group_levels(q, 2, 0, 1000);
    EXPECT_FALSE(all.grid);
    EXPECT_EQ(all.values.size(), static_cast<std::size_t>(uniq.numel()));
    EXPECT_EQ(all.distinct, all.values.size());
    const GroupLevels few = group_levels(q, 2, 0, 5);
    ASSERT_EQ(few.values.size(), 5u);
    EXPECT_EQ(few.distinct, all.values.size());
    EXPECT_EQ(few.values.front(), all.values.front());
    EXPECT_EQ(few.values.back(), all.values.back());
}

TEST(GroupLevels, RowsAndGroupsOutOfRangeAreErrors) {
    const QuantizedTensor q = quantize_for_levels("rtn:b=4,g=32", 3, 64);
    const std::string row = test::error_of([&] { group_levels(q, 3, 0, 16); });
    EXPECT_NE(row.find("row 3"), std::string::npos) << row;
    const std::string group = test::error_of([&] { group_levels(q, 0, 2, 16); });
    EXPECT_NE(group.find("2 groups per row"), std::string::npos) << group;
}
