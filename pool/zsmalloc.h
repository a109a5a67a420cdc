// zsmalloc: the default zpool driver, a user-space port of Linux's
// mm/zsmalloc.c. It stores objects of 1..4096 bytes (compressed pages) with
// little waste, and moves them to give memory back.
//
// Size classes. A request is rounded up to a multiple of 16 bytes, so there
// are 256 sizes (16, 32, ..., 4096). Each size gets its own zspage geometry
// (below); neighbouring sizes whose geometry comes out the same (same pages
// and objects per zspage) are merged into one class of the larger size, as
// Linux does, which leaves 90 classes (29 of them between 1 and 3 KiB).
// Merging costs nothing: a zspage holds as many of the smaller objects as
// of the larger.
//
// Zspages. A class's objects are packed into zspages: runs of 1 to 8 pages
// from PageSource::MapPages(n). Linux chains single pages and copies objects
// that straddle a page boundary on every map; here the run is contiguous, so
// objects straddle pages freely and Map() returns a pointer into the run with
// no copy. Each zspage ends with its own metadata:
//
//   | obj 0 | obj 1 | ... | obj k-1 | unused | reverse map: k x u32 | header |
//
// The 56-byte header holds list links, the last-store time, the in-use count
// and the pin count; the reverse map holds, for each slot, the handle stored
// there (compaction and Shrink start from a zspage and must find handles) or,
// for a free slot, the next free slot. Keeping this in the run means no
// separate descriptor allocator and metadata that comes and goes exactly with
// the data.
//
// Zspage length is the pool's main fixed cost: compaction leaves every class
// in use one partly filled zspage, on average half empty, and a shim's pool
// after refault churn is a few MB spread over ~80 classes. So the pages per
// zspage are chosen per size to minimise the waste, counting the metadata as
// waste, plus 1/64 of the zspage per page: a longer run must cut the waste
// by that much to be chosen. The classes up to 3 KiB then sum to 214 pages
// (856 KiB; 515 pages, 2 MiB, at Linux-like 1/256), and under the churn of
// zsmalloc_test's ChurnKeepsPoolWithinQuarterOfItsContents the pool holds at
// most 1.18x its live bytes (1.32x at 1/256, at 6.3 MB live: 1.5 MB of it
// free slots in those last zspages, none in extra zspages). The price is
// coarser classes, so large pools pack about 1% worse. Measured
// (zsmalloc_test): 20000 objects of 1000..3000 bytes take 1.049x their
// bytes (1.041x at 1/256); after freeing a random half and Compact, 1.057x
// (the same). At 100000 objects, replaced 5x over, compacted, then half
// freed and compacted again: 1.045x and 1.050x (1.030x and 1.037x). The 1-3 KiB
// classes waste 0.4-2.7% of a zspage, 1.1% on average, in runs of 1 to 6
// pages (2016 bytes: 2 in 1 page; 2544 bytes: 8 in 5 pages; 2048 bytes no
// longer fit twice in a page beside the metadata and join 2224: 11 in 6).
// The worst are the tiniest (16 bytes: 21%, mostly reverse map) and 4096
// (7 objects in 8 pages: nearly incompressible pages are better kept
// resident anyway).
//
// Handles. A handle names an 8-byte entry in a handle table (see
// zsmalloc_handle_table.h) that records where the object is: zspage base,
// slot and class. Compaction rewrites the entry; the handle stays. With the
// reverse map, an object costs 12 bytes of metadata. The table grows and
// shrinks a page at a time and is sharded by class, 8 shards with a lock
// each, so handle allocation is no global lock. The pool's 32-bit tag in the
// handle's upper half lets debug builds reject handles from other pools.
//
// Locking. Each class has a mutex guarding its zspages; Malloc, Free and Map
// take only their class's lock (plus a handle shard's for Malloc/Free), and
// never call the PageSource under it. Map pins the zspage (a count checked
// under the class lock), Unmap unpins without the lock. No path allocates
// from the heap: the pool object, the handle table and all metadata are in
// pages from the PageSource, placed with placement new.
//
// Compaction, per class: while the class's zspages have a whole zspage worth
// of free slots, take the emptiest unpinned zspage, move its objects into the
// fullest ones (updating their handle entries) and give it back. Zspages are
// kept in 4 fullness groups by in-use ratio so both ends are found at once;
// Malloc also fills the fullest zspage first, to keep sparse ones draining.
// Unlike Linux, Free keeps an emptied zspage (handle page) when it is its
// class's (shard's) only room, else a store/free pair at a boundary would
// mmap and munmap each time, and munmap means a TLB shootdown on every CPU;
// Compact gives those back too, so an emptied, compacted pool holds only
// its fixed 4 pages (the pool object with its class heads and handle root).
// As in Linux, nothing compacts by itself: random frees leave holes that
// Malloc refills only in the same class, so under churn the ratio above
// drifts up (1.083x after replacing 5x the 20000 objects) until the owner
// calls Compact(), which costs little when there is nothing to move.
//
// Shrink, as Linux 6.2: every zspage sits on its class's LRU list, moved to
// the front on every store and stamped from a pool-wide store clock; Shrink
// takes the zspage with the oldest stamp across classes, isolates it (no
// Malloc, compaction or other Shrink touches it), and calls ZpoolOps::evict
// on each of its objects with no lock held, so the callback can Map the
// handle. Saved objects are freed; when the zspage is empty it goes back,
// otherwise it returns to the lists as most recent. The caller must not Free
// a handle while Shrink evicts it (zswap's own tree lock serialises that).
#ifndef COLDHEAP_POOL_ZSMALLOC_H_
#define COLDHEAP_POOL_ZSMALLOC_H_

#include <cstddef>
#include <cstdint>

#include "pool/zpool.h"

namespace coldheap::pool {

// The "zsmalloc" driver, in static storage, built on first use.
ZpoolDriver& ZsmallocDriver();

// One size class of a zsmalloc pool, for tests and benchmarks.
struct ZsmallocClassStats {
  size_t object_size = 0;  // slot size: every request up to it lands here
  int pages_per_zspage = 0;
  int objects_per_zspage = 0;
  uint64_t zspages = 0;       // zspages the class holds now
  uint64_t objects_used = 0;  // objects stored in them
};

// The class that stores objects of `size` bytes (1..kMaxObjectSize) in
// `pool`, which must have been created by ZsmallocDriver().
ZsmallocClassStats GetZsmallocClassStats(const Zpool& pool, size_t size);

}  // namespace coldheap::pool

#endif  // COLDHEAP_POOL_ZSMALLOC_H_
