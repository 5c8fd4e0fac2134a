#pragma once
// Which pages of a range are mapped into this process, for the tests of release_pages and its callers.
#include <cstddef>
#include <cstdint>
#include <string>

namespace quench::test {

std::size_t page_size();

// Pages overlapping [p, p + n) present in this process's page table (/proc/self/pagemap bit 63); -1 when
// pagemap cannot be read.
int64_t present_pages(const void* p, std::size_t n);

// Whether this kernel releases pages on request (madvise MADV_PAGEOUT, Linux 5.4+): tests skip otherwise.
bool can_release_pages();

// fsync of the file at path: its pages are clean afterwards, so the kernel can drop them at once.
void sync_to_disk(const std::string& path);

}  // namespace quench::test
