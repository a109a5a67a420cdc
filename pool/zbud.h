// zbud: the simple zpool driver, at most two objects ("buddies") per page.
// It is Linux's mm/zbud.c, kept as the baseline that zsmalloc is measured
// against: its density is at best 2 objects per page, but it is easy to
// reason about and its objects never move.
//
// Layout of a data page (4096 bytes, 64 chunks of 64 bytes):
//
//   | first buddy -->          free chunks           <-- last buddy |
//   0                                                            4096
//
// An object of `size` bytes takes ceil(size / 64) chunks. The first buddy
// grows from the page's start, the last buddy ends at the page's end, so the
// two fit together whenever their chunks add up to at most 64. Unlike Linux,
// the page header is not in the page: headers live out of line in a header
// table (64 bytes each, one cache line, the same 1/64 of overhead as Linux's
// in-page header chunk). That way an object of a full 4096 bytes, which the
// zpool contract allows, is storable (alone in its page).
//
// Lists, all under the one pool lock (zbud is the baseline; a single lock
// keeps it obviously correct):
//   unbuddied[i]  pages holding one buddy and i free chunks (1..63). Malloc
//                 of n chunks takes a page from the first non-empty list
//                 i >= n, so it fills the tightest gap that fits, and only
//                 maps a new page when none fits.
//   buddied       pages that take no more objects (two buddies, or one
//                 buddy of all 64 chunks).
//   lru           every page, most recently stored-into first. Shrink
//                 reclaims from the tail: for each buddy of the oldest page
//                 it calls ZpoolOps::evict, and gives the page back to the
//                 PageSource once both buddies are gone.
//
// Handles name the header's index in the table, the buddy, and a 16-bit
// generation tag of that buddy slot:
//
//   bits 63..32  header index + 1   (so 0 is never a handle)
//   bits 16..1   generation tag     (bumped on every free of the slot)
//   bit  0       0 = first buddy, 1 = last buddy
//
// Objects never move, so Map is a table lookup plus an offset and takes no
// lock; the tag makes a double free or a stale handle detectable (a debug
// check) even after the header was reused for another page.
//
// Memory: the pool object, the header table and the data pages all come
// from the PageSource. The header table grows in blocks of 1, 2, 4, ...
// pages (block k holds 64 << k headers), so headers never move and the
// directory of blocks is a small fixed array inside the pool object. Headers
// of freed pages are reused; the table itself is given back only when the
// pool is destroyed (1/64 of the pool's peak size at most). Data pages go
// back to the PageSource as soon as both their buddies are freed.
#ifndef COLDHEAP_POOL_ZBUD_H_
#define COLDHEAP_POOL_ZBUD_H_

#include "pool/zpool.h"

namespace coldheap::pool {

// The "zbud" driver. Lives in static storage, built on first use (no static
// constructor, no heap), never destroyed.
ZpoolDriver& ZbudDriver();

}  // namespace coldheap::pool

#endif  // COLDHEAP_POOL_ZBUD_H_
