// MappedFile's release_pages: after it, none of the whole pages inside the range is mapped into this process
// (read from /proc/self/pagemap, bit 63 "present") and the contents read back unchanged (from the file). Pages
// next to the range may go too: the kernel reclaims file pages by folio (several pages at once), which only
// costs a re-read. Heap memory keeps its contents.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <vector>

#include "model/mapped_file.h"
#include "support/pages.h"
#include "support/test_paths.h"

using namespace quench;

namespace {

const std::size_t kPage = test::page_size();
using test::present_pages;

uint64_t sum_bytes(const uint8_t* p, std::size_t n) {
    uint64_t s = 0;
    for (std::size_t i = 0; i < n; ++i) s += p[i] * (i % 7 + 1);
    return s;
}

}  // namespace

TEST(MappedFile, ReleasedPagesLeaveTheProcessAndReadBackUnchanged) {
    test::ScratchDir dir;
    const std::string path = dir.file("pages.bin");
    const std::size_t size = 64 * kPage;
    std::vector<uint8_t> bytes(size);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 131 + i / 977);
    {
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(size));
        const int fd = ::open(path.c_str(), O_RDONLY);
        ASSERT_GE(fd, 0);
        ::fsync(fd);  // clean pages: nothing to write back before they can go
        ::close(fd);
    }
    const MappedFile file(path);
    const uint64_t want = sum_bytes(bytes.data(), size);
    EXPECT_EQ(sum_bytes(file.data(), size), want);  // touches every page
    if (present_pages(file.data(), size) < 0) GTEST_SKIP() << "/proc/self/pagemap is not readable here";
    if (!test::can_release_pages()) GTEST_SKIP() << "this kernel has no MADV_PAGEOUT";
    ASSERT_EQ(present_pages(file.data(), size), 64);

    // A range from the middle of page 3 to the middle of page 40: at least pages 4..39 go.
    release_pages(file.data() + 3 * kPage + 100, 37 * kPage);
    EXPECT_EQ(present_pages(file.data() + 4 * kPage, 36 * kPage), 0);
    EXPECT_LE(present_pages(file.data(), size), 64 - 36);
    EXPECT_EQ(sum_bytes(file.data(), size), want);  // read again from the file
    EXPECT_EQ(present_pages(file.data(), size), 64);

    // Heap memory keeps its contents (swapped out or left in place).
    std::vector<uint8_t> heap(bytes);
    release_pages(heap.data(), heap.size());
    EXPECT_EQ(sum_bytes(heap.data(), heap.size()), want);
    release_pages(heap.data(), 10);  // less than a page: nothing to do
    EXPECT_EQ(sum_bytes(heap.data(), heap.size()), want);
}
