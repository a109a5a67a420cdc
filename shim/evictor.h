// The evictor: one background thread that, every COLDHEAP_SCAN_INTERVAL,
//   1. asks the kernel which heap pages were written since the last scan
//      (PAGEMAP_SCAN on the region registered with UFFD_FEATURE_WP_ASYNC;
//      the scan also re-arms the write-protection it reads) and ages the
//      rest by one scan;
//   2. evicts resident pages that are cold: not written and not refaulted for
//      COLDHEAP_COLD_AGE (0: every resident page, the stress mode), in
//      batches of up to Staging::kSlots pages;
//   3. frees the pool copies of pages jemalloc purged (kDiscarded);
//   4. refreshes the gauges and the statistics file.
//
// Capture without losing a write: a batch is first moved out of the region
// with UFFDIO_MOVE into the staging slots. From then on no program thread can
// write the old frame; a touch faults, and the handler copies the page back
// from its slot (no decompression). Only then is the copy compressed; a
// same-filled page is kept as its word, a page that compresses to more than
// kMaxCompressedSize is moved back and not tried again for a while
// (exponential back-off), and a page still shared copy-on-write with a
// forked child (EBUSY) is left alone: evicting it would free nothing.
#ifndef COLDHEAP_SHIM_EVICTOR_H_
#define COLDHEAP_SHIM_EVICTOR_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "shim/compressor.h"
#include "shim/heap.h"
#include "shim/uffd_compat.h"

namespace coldheap::shim {

// Pages that compress worse than this stay resident (zswap rejects pages
// that do not shrink; we want a real saving for the fault's cost).
inline constexpr size_t kMaxCompressedSize = kPageSize * 3 / 4;

class Evictor {
 public:
  // Starts the thread. `pagemap_fd` is /proc/self/pagemap of this process.
  bool Start(Heap& heap, int pagemap_fd);

  // Around fork(2): Pause returns once the evictor is between batches, holds
  // no pool lock and has no page in flight, and holds it there; Resume lets
  // it go on (parent). A child starts afresh.
  void Pause() { batch_mu_.lock(); }
  void Resume() { batch_mu_.unlock(); }

  // At exit: no more statistics files; returns the live file's path ("" if
  // none) for the caller to remove.
  const char* StopWritingStats() {
    exiting_.store(true);
    std::lock_guard<std::mutex> lock(batch_mu_);  // a write in progress ends
    return live_stats_path_;
  }

  // One full pass (scan, evict, clean up). The thread calls it each
  // interval; exposed so tests can drive passes deterministically.
  void Pass();

 private:
  struct Batch {
    size_t index[Staging::kSlots];  // region page of each slot
    bool staged[Staging::kSlots];   // whether the slot holds its page
    size_t count = 0;
  };

  static void* ThreadMain(void* arg);
  void ScanWrites();
  void AgeRange(size_t from, size_t to, bool written);
  void EvictColdPages();
  bool IsCandidate(PageEntry& e, uint8_t cold_scans);
  void EvictBatch(Batch& batch);
  void MoveOut(Batch& batch, size_t first, size_t run);
  void CompressStaged(size_t slot, size_t index);
  void MoveBack(size_t slot, size_t index, PageEntry& e);
  void WaitForStolenSlots(const Batch& batch);
  void FreeDiscarded(size_t index);
  void RefreshGauges();

  Heap* heap_ = nullptr;
  int pagemap_fd_ = -1;
  pthread_t thread_{};
  std::mutex batch_mu_;  // held while a pass is in progress
  Compressor compressor_;
  page_region regions_[512];  // PAGEMAP_SCAN output, reused
  unsigned char out_[kPageSize];  // compression output, reused
  char live_stats_path_[128] = {};  // see PrepareLiveStatsPath; "" if none
  std::atomic<bool> exiting_{false};
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_EVICTOR_H_
