// A PageSource over the OS that counts what it hands out, so tests can check
// that a pool's TotalSize() is exactly what it holds, and can make the source
// run dry to test out-of-memory paths.
#ifndef COLDHEAP_TESTS_POOL_COUNTING_PAGE_SOURCE_H_
#define COLDHEAP_TESTS_POOL_COUNTING_PAGE_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <limits>

#include "pool/page_source.h"

namespace coldheap::pool {

class CountingPageSource final : public PageSource {
 public:
  void* MapPages(size_t pages) override {
    if (held_pages_.load() + pages > limit_pages_.load()) return nullptr;
    void* p = OsPageSource().MapPages(pages);
    if (p != nullptr) held_pages_ += pages;
    return p;
  }
  void UnmapPages(void* start, size_t pages) override {
    OsPageSource().UnmapPages(start, pages);
    held_pages_ -= pages;
  }

  uint64_t held_bytes() const { return held_pages_.load() * kPageSize; }
  void set_limit_pages(uint64_t pages) { limit_pages_ = pages; }

 private:
  std::atomic<uint64_t> held_pages_{0};
  std::atomic<uint64_t> limit_pages_{std::numeric_limits<uint64_t>::max()};
};

}  // namespace coldheap::pool

#endif  // COLDHEAP_TESTS_POOL_COUNTING_PAGE_SOURCE_H_
