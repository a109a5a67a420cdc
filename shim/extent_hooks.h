// jemalloc's extent hooks for the managed region: how jemalloc gets memory
// and gives it back, and where invariant 7 (purges are honoured) lives.
//
//   alloc          carves from the region (bump pointer); when the region is
//                  full, falls back to plain mmap so the program never sees a
//                  failure coldheap caused (that memory is simply unmanaged)
//   dalloc         declined: jemalloc retains the range and reuses it
//   purge_forced,  drop the pages: any compressed copy is discarded first,
//   decommit       then MADV_DONTNEED, so the next touch reads zeros
//   purge_lazy     not offered (MADV_FREE'd pages could reappear with old
//                  contents after we evicted them), so jemalloc purges forced
//   split, merge   always allowed inside the region; ranges that are not
//                  both in it are never merged
//
// Hooks run on program threads, often with jemalloc's locks held: they never
// take a lock a fault handler takes and never touch the pool (a purged
// compressed page becomes kDiscarded; its handle is freed by our threads).
#ifndef COLDHEAP_SHIM_EXTENT_HOOKS_H_
#define COLDHEAP_SHIM_EXTENT_HOOKS_H_

#include <jemalloc/jemalloc.h>

#include <cstddef>

#include "shim/heap.h"

namespace coldheap::shim {

// The hooks, bound to `heap` (kept by reference for the process's life).
extent_hooks_t* RegionExtentHooks(Heap& heap);

// Drops [addr, addr + size) of the region (page-aligned): discards evicted
// copies, waits out pages a shim thread is moving, then MADV_DONTNEED.
// Exposed for tests.
void DropPages(Heap& heap, void* addr, size_t size);

// Installs `hooks` on every automatic arena, so all of the program's
// allocations land in the region. Each arena is first created with
// jemalloc's default hooks, so its metadata (which jemalloc takes through
// the hooks an arena is born with) stays outside the region: jemalloc's
// fork handlers touch it in a child before the child watches its region.
// Returns the number of arenas hooked (0 on failure).
unsigned InstallExtentHooks(extent_hooks_t* hooks);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_EXTENT_HOOKS_H_
