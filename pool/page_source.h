// Where a pool's memory comes from. A pool sits inside a malloc
// implementation, so it never calls malloc: it takes runs of whole pages from
// a PageSource. The OS source is anonymous mmap/munmap; tests substitute a
// source that counts, to check that a pool's TotalSize() is exact.
#ifndef COLDHEAP_POOL_PAGE_SOURCE_H_
#define COLDHEAP_POOL_PAGE_SOURCE_H_

#include <cstddef>

namespace coldheap::pool {

inline constexpr size_t kPageSize = 4096;

class PageSource {
 public:
  virtual ~PageSource() = default;
  // `pages` contiguous, zero-filled, page-aligned pages; nullptr when the
  // source is out of memory.
  virtual void* MapPages(size_t pages) = 0;
  // Gives back a run from MapPages, whole (same pointer and count).
  virtual void UnmapPages(void* start, size_t pages) = 0;
};

// Anonymous private mmap; thread-safe; never allocates.
PageSource& OsPageSource();

}  // namespace coldheap::pool

#endif  // COLDHEAP_POOL_PAGE_SOURCE_H_
