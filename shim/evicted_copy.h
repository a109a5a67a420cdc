// An evicted page's copy, wherever it is kept (a pool object, a same-filled
// word, a writeback slot): reading it back, and giving it up once the page
// is in place again. The fault handlers do both on every refault; a forked
// child that cannot watch its heap does both for every evicted page.
// Allocation-free: called from the fault path.
#ifndef COLDHEAP_SHIM_EVICTED_COPY_H_
#define COLDHEAP_SHIM_EVICTED_COPY_H_

#include "shim/compressor.h"
#include "shim/deferred_frees.h"
#include "shim/heap.h"
#include "shim/page_table.h"

namespace coldheap::shim {

// Writes the bytes of the page `e` (whose word was `was`: kCompressed,
// kSameFilled or kWrittenBack) to the page `out`; `scratch` holds a page
// for the written-back bytes. Our own bytes failing to decode would hand the
// program garbage: it stops loudly instead.
void ReadEvictedCopy(Heap& heap, Compressor& compressor, const PageEntry& e,
                     PageWord was, char* out, char* scratch);

// Gives up that copy and takes it off the counters. A pool handle goes to
// `deferred` while it has room (nullptr: freed now).
void DropEvictedCopy(Heap& heap, const PageEntry& e, PageWord was,
                     DeferredFrees* deferred);

// The part of that for a dense copy (was.codec > 0): its dictionary
// reference and the dense tier's counters. For callers that drop the bytes
// another way (a purge).
void ReleaseDenseCopy(Heap& heap, PageWord was);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_EVICTED_COPY_H_
