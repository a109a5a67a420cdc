#include "shim/extent_hooks.h"

#include <sched.h>
#include <sys/mman.h>

#include <cstdio>

#include "shim/evicted_copy.h"
#include "shim/os.h"

namespace coldheap::shim {
namespace {

Heap* hooked_heap = nullptr;

bool InRegion(const void* addr, size_t size) {
  return hooked_heap->region->ContainsRange(addr, size);
}

// Region full: unmanaged memory, as jemalloc's default hooks would give.
// Reserve aligns to 2 MiB; a larger alignment takes the slack and trims it.
void* MapOutsideRegion(size_t size, size_t alignment) {
  size_t slack = alignment > os::kHugePageSize ? alignment : 0;
  os::OsResult<void*> r = os::Reserve(size + slack);
  if (!r.ok()) return nullptr;
  auto start = reinterpret_cast<uintptr_t>(r.value);
  uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
  if (aligned > start) {
    (void)os::Release(r.value, aligned - start);
  }
  size_t tail = slack - (aligned - start);
  if (tail > 0) (void)os::Release(reinterpret_cast<char*>(aligned) + size, tail);
  return reinterpret_cast<void*>(aligned);
}

void* Alloc(extent_hooks_t*, void* new_addr, size_t size, size_t alignment,
            bool* zero, bool* commit, unsigned) {
  if (alignment < kPageSize) alignment = kPageSize;
  Region& region = *hooked_heap->region;
  // A fixed address is only ever jemalloc growing an extent in place.
  if (new_addr != nullptr) {
    void* p = region.AllocateAt(new_addr, size);
    if (p == nullptr) return nullptr;
    *zero = true;
    *commit = true;
    return p;
  }
  void* p = region.Allocate(size, alignment);
  if (p == nullptr) p = MapOutsideRegion(size, alignment);
  if (p == nullptr) return nullptr;
  *zero = true;    // fresh region pages are untouched: they read zeros
  *commit = true;  // and are always accessible
  return p;
}

bool Dalloc(extent_hooks_t*, void*, size_t, bool, unsigned) {
  return true;  // declined: jemalloc retains and reuses the range
}

void Destroy(extent_hooks_t*, void* addr, size_t size, bool, unsigned) {
  if (InRegion(addr, size)) {
    DropPages(*hooked_heap, addr, size);
  } else {
    (void)os::Release(addr, size);
  }
}

bool Commit(extent_hooks_t*, void*, size_t, size_t, size_t, unsigned) {
  return false;  // pages are always committed
}

bool Purge(extent_hooks_t*, void* addr, size_t, size_t offset, size_t length,
           unsigned) {
  char* start = static_cast<char*>(addr) + offset;
  if (InRegion(start, length)) {
    DropPages(*hooked_heap, start, length);
    return false;
  }
  return !os::DontNeed(start, length).ok();
}

bool Split(extent_hooks_t*, void*, size_t, size_t, size_t, bool, unsigned) {
  return false;
}

bool Merge(extent_hooks_t*, void* a, size_t size_a, void* b, size_t size_b,
           bool, unsigned) {
  return !(InRegion(a, size_a) && InRegion(b, size_b));
}

extent_hooks_t hooks = {
    Alloc, Dalloc, Destroy, Commit, /*decommit=*/Purge,
    /*purge_lazy=*/nullptr, /*purge_forced=*/Purge, Split, Merge,
};

void Pause(int spins) {
  if (spins < 100) {
    __builtin_ia32_pause();
  } else {
    sched_yield();
  }
}

// Moves one page to the state a purge leaves it in; false to retry.
bool DropPage(Heap& heap, PageEntry& e) {
  Stats& stats = *heap.stats;
  uint32_t word = PageTable::LoadWord(e);
  PageWord w = PageWord::Unpack(word);
  switch (w.state) {
    case PageState::kUntouched:
    case PageState::kDiscarded:
    case PageState::kDiscardedSlot:
      return true;
    case PageState::kClaimed:
    case PageState::kRestoring:
      return false;  // a shim thread finishes it without waiting on us
    case PageState::kResident:
    case PageState::kStaged:  // the evictor sees it gone and drops its copy
      return PageTable::Claim(e, word, PageState::kUntouched);
    case PageState::kSameFilled:
      if (!PageTable::Claim(e, word, PageState::kUntouched)) return false;
      stats.same_filled_pages.fetch_sub(1, std::memory_order_relaxed);
      return true;
    case PageState::kCompressed:
      if (!PageTable::Claim(e, word, PageState::kDiscarded)) return false;
      if (w.codec != 0) ReleaseDenseCopy(heap, w);
      stats.stored_pages.fetch_sub(1, std::memory_order_relaxed);
      stats.compressed_bytes.fetch_sub(w.size, std::memory_order_relaxed);
      return true;
    case PageState::kWrittenBack:
      if (!PageTable::Claim(e, word, PageState::kDiscardedSlot)) return false;
      if (w.codec != 0) ReleaseDenseCopy(heap, w);
      stats.file_pages.fetch_sub(1, std::memory_order_relaxed);
      return true;
  }
  return true;
}

}  // namespace

extent_hooks_t* RegionExtentHooks(Heap& heap) {
  hooked_heap = &heap;
  return &hooks;
}

void DropPages(Heap& heap, void* addr, size_t size) {
  size_t first = heap.region->PageIndex(addr);
  size_t pages = size / kPageSize;
  for (size_t i = first; i < first + pages; ++i) {
    PageEntry& e = heap.table->at(i);
    for (int spins = 0; !DropPage(heap, e); ++spins) Pause(spins);
  }
  heap.stats->purged_pages.fetch_add(pages, std::memory_order_relaxed);
  (void)os::DontNeed(addr, size);
}

unsigned InstallExtentHooks(extent_hooks_t* ours) {
  unsigned narenas = 0;
  size_t len = sizeof(narenas);
  if (mallctl("opt.narenas", &narenas, &len, nullptr, 0) != 0) return 0;
  extent_hooks_t* original = nullptr;
  len = sizeof(original);
  if (mallctl("arena.0.extent_hooks", &original, &len, nullptr, 0) != 0) {
    return 0;
  }
  unsigned hooked = 0;
  for (unsigned i = 0; i < narenas; ++i) {
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.extent_hooks", i);
    extent_hooks_t* current = nullptr;
    len = sizeof(current);
    // Born with the default hooks (or already alive), then switched.
    mallctl(name, &current, &len, &original, sizeof(original));
    if (mallctl(name, nullptr, nullptr, &ours, sizeof(ours)) == 0) ++hooked;
  }
  return hooked;
}

}  // namespace coldheap::shim
