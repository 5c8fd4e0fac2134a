// Hidden states between blocks (core/model/hidden_states.h): batches come back exactly as they were stored,
// in memory or from the scratch file past the cap; the file has no name at any time, so nothing is left in
// its directory; a batch of another shape and a directory that cannot be used are errors that say so.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "common/error.h"
#include "common/scratch_file.h"
#include "model/hidden_states.h"
#include "support/errors.h"
#include "support/files.h"
#include "support/test_paths.h"
#include "support/weights.h"

namespace quench {
namespace {

TEST(HiddenStates, BatchesRoundTripInMemoryAndThroughTheFile) {
    test::ScratchDir dir;
    const int64_t batch_bytes = 2 * 16 * 8 * 4;
    // Caps that keep all, one, and none of the three batches in memory.
    for (const int64_t cap : {int64_t(1) << 20, batch_bytes, int64_t(0)}) {
        HiddenStates h(cap, dir.path().string());
        std::vector<at::Tensor> want;
        for (uint64_t i = 0; i < 3; ++i) {
            want.push_back(test::gaussian({2, 16, 8}, 10 + i));
            h.append(want.back());
        }
        ASSERT_EQ(h.size(), 3u);
        const int64_t in_file = cap >= 3 * batch_bytes ? 0 : cap == batch_bytes ? 2 : 3;
        EXPECT_EQ(h.spilled_bytes(), in_file * batch_bytes) << "cap " << cap;
        for (std::size_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::equal(h.get(i), want[i])) << "cap " << cap << " batch " << i;
        // Replacing batches (a block's outputs) keeps the others.
        const at::Tensor next = test::gaussian({2, 16, 8}, 99);
        h.set(1, next);
        EXPECT_TRUE(torch::equal(h.get(1), next));
        EXPECT_TRUE(torch::equal(h.get(0), want[0]));
        EXPECT_TRUE(torch::equal(h.get(2), want[2]));
        // The stored batch is a copy: changing the caller's tensor afterwards changes nothing.
        want[2].add_(1);
        EXPECT_FALSE(torch::equal(h.get(2), want[2]));
        // No name in the directory, even while the file holds batches.
        EXPECT_TRUE(test::entries(dir.path().string()).empty()) << "cap " << cap;
        const std::string wrong = test::error_of([&] { h.set(0, torch::zeros({2, 15, 8})); });
        EXPECT_TRUE(test::contains_all(wrong, {"batch 0", "[2, 16, 8]", "[2, 15, 8]"})) << wrong;
    }
    EXPECT_TRUE(test::entries(dir.path().string()).empty());
}

TEST(HiddenStates, AnUnusableDirectoryIsNamedWhenTheFirstBatchSpills) {
    const std::string missing = "/nonexistent-quench-dir/sub";
    HiddenStates h(0, missing);
    const std::string e = test::error_of([&] { h.append(torch::zeros({1, 4, 4})); });
    EXPECT_TRUE(test::contains_all(e, {missing, "cannot create a temporary file"})) << e;
    // In memory nothing touches the directory.
    HiddenStates resident(1 << 20, missing);
    EXPECT_NO_THROW(resident.append(torch::zeros({1, 4, 4})));
}

TEST(ScratchFile, ReadsBackWhatWasWrittenAndNamesAShortRead) {
    test::ScratchDir dir;
    ScratchFile f("quench-test", dir.path().string());
    EXPECT_TRUE(test::entries(dir.path().string()).empty());
    const std::string text = "hidden states";
    f.write_at(100, text.data(), text.size(), "test bytes");
    std::string back(text.size(), '\0');
    f.read_at(100, back.data(), back.size(), "test bytes");
    EXPECT_EQ(back, text);
    char past[8];
    const std::string e = test::error_of([&] { f.read_at(110, past, sizeof past, "test bytes"); });
    EXPECT_TRUE(test::contains_all(e, {f.path(), "cannot read test bytes", "ends early"})) << e;
}

}  // namespace
}  // namespace quench
