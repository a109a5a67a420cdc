// What the data path shares: the region, its page table, the staging area
// the evictor moves pages into, the pool, the userfaultfd and the counters.
// Plain references wired once at start-up (and again in a forked child);
// the fault handlers, the evictor and the extent hooks all work through it.
#ifndef COLDHEAP_SHIM_HEAP_H_
#define COLDHEAP_SHIM_HEAP_H_

#include <cstddef>

#include "pool/zpool.h"
#include "shim/config.h"
#include "shim/page_table.h"
#include "shim/region.h"
#include "shim/stats.h"

namespace coldheap::shim {

// Pages the evictor moves out (UFFDIO_MOVE) to hold them on probation and
// compress them while no program thread can write them. Registered with the
// same userfaultfd, as UFFDIO_MOVE requires of its destination. Address
// space only (MAP_NORESERVE): a slot costs memory only while it holds a page.
struct Staging {
  static constexpr size_t kSlots = size_t{1} << 18;  // 1 GiB per scan at most
  char* base = nullptr;

  char* Slot(size_t i) const { return base + i * kPageSize; }
  bool Contains(const void* p) const {
    auto* c = static_cast<const char*>(p);
    return c >= base && c < base + kSlots * kPageSize;
  }
};

struct Heap {
  const Config* config = nullptr;
  Region* region = nullptr;
  PageTable* table = nullptr;
  Staging staging;
  pool::Zpool* pool = nullptr;
  Stats* stats = nullptr;
  int uffd = -1;
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_HEAP_H_
