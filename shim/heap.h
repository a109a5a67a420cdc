// What the data path shares: the region, its page table, the staging area
// the evictor moves pages into, the pool, the userfaultfd and the counters.
// Plain references wired once at start-up (and again in a forked child);
// the fault handlers, the evictor and the extent hooks all work through it.
#ifndef COLDHEAP_SHIM_HEAP_H_
#define COLDHEAP_SHIM_HEAP_H_

#include <cstddef>

#include "pool/zpool.h"
#include "shim/config.h"
#include "shim/dense_tier.h"
#include "shim/page_table.h"
#include "shim/region.h"
#include "shim/stats.h"
#include "shim/writeback.h"

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

class FaultHandlers;

struct Heap {
  const Config* config = nullptr;
  Region* region = nullptr;
  PageTable* table = nullptr;
  Staging staging;
  pool::Zpool* pool = nullptr;
  Stats* stats = nullptr;
  int uffd = -1;
  WritebackFile* writeback = nullptr;  // null: COLDHEAP_WRITEBACK_FILE unset
  FaultHandlers* handlers = nullptr;  // their CPU time, their deferred frees
  DenseTier* dense = nullptr;  // null: COLDHEAP_DENSE=off
};

// Every object in the pool starts with the index of its page, so that the
// pool's shrinker, which only knows handles, can find the page it evicts.
using ObjectHeader = uint32_t;

// Frees a pool handle. With writeback on, not while the pool's shrinker may
// be mapping that handle in its evict callback (the zpool contract forbids
// Free during Map): the evictor holds writeback->shrink_mu around each
// Shrink step.
inline void FreeHandle(Heap& heap, pool::Handle handle) {
  if (heap.writeback == nullptr) return heap.pool->Free(handle);
  std::lock_guard<std::mutex> lock(heap.writeback->shrink_mu);
  heap.pool->Free(handle);
}

// Gives back what a discarded page still holds: its pool handle
// (kDiscarded) or its writeback slot (kDiscardedSlot).
inline void FreeDiscardedPayload(Heap& heap, PageState state, uint64_t payload) {
  if (state == PageState::kDiscardedSlot) {
    heap.writeback->Release(payload);
  } else {
    FreeHandle(heap, payload);
  }
}

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_HEAP_H_
