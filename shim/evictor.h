// The evictor: one background thread that, every COLDHEAP_SCAN_INTERVAL,
//   1. asks the kernel which heap pages were written since the last scan
//      (PAGEMAP_SCAN on the region registered with UFFD_FEATURE_WP_ASYNC;
//      the scan also re-arms the write-protection it reads) and ages the
//      rest by one scan;
//   2. compresses the pages it put on probation at the previous scan and
//      that nobody touched since;
//   3. reports the ages, the pool and the refaults to the policy
//      (policy/reclaim_policy.h), which says how old a page must be to go,
//      how many may go this scan (the CPU budget) and whether the pool is
//      full;
//   4. puts that many of the coldest candidates on probation: moved out of
//      the region (UFFDIO_MOVE) into a staging slot, uncompressed;
//   5. with COLDHEAP_DENSE, recompresses deep-cold pages in what is left of
//      the CPU budget (shim/recompressor.h);
//   6. frees the pool copies of pages jemalloc purged (kDiscarded) and
//      refreshes the gauges and statistics files.
//
// Why probation (a second chance): write tracking cannot see reads, and a
// cache's hot set is often only read. A page on probation that is read
// faults and is copied back from its slot by the handler, with no
// decompression; only pages that stay untouched for a whole interval are
// compressed. A read-hot page costs one cheap fault per cold age, not a
// compression and a decompression.
//
// Capture without losing a write: once moved, no program thread can write
// the old frame; a touch faults and the handler copies the page back from
// its slot. A same-filled page is kept as its word; a page that compresses
// to more than kMaxCompressedSize is copied back and not tried again for a
// while (exponential back-off); a page that UFFDIO_MOVE refuses because a
// fork shared it (EBUSY) is made the process's own by a harmless write and
// moved again.
//
// Stress mode (COLDHEAP_COLD_AGE=0) skips probation and compresses every
// resident page at every scan, in batches of kBatchPages.
#ifndef COLDHEAP_SHIM_EVICTOR_H_
#define COLDHEAP_SHIM_EVICTOR_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "policy/reclaim_policy.h"
#include "shim/compressor.h"
#include "shim/heap.h"
#include "shim/recompressor.h"
#include "shim/uffd_compat.h"

namespace coldheap::shim {

// Pages that compress worse than this stay resident (zswap rejects pages
// that do not shrink; we want a real saving for the fault's cost).
inline constexpr size_t kMaxCompressedSize = kPageSize * 3 / 4;
// Pages handled under one hold of the batch lock (what fork waits for).
inline constexpr size_t kBatchPages = 64;

// The pool's evict callback (ZpoolOps::evict; `context` is the Heap): moves
// one object to the writeback file and marks its page kWrittenBack.
bool WriteBackObject(void* context, pool::Zpool& pool, pool::Handle handle);

class Evictor {
 public:
  // Starts the thread. `pagemap_fd` is /proc/self/pagemap of this process.
  bool Start(Heap& heap, int pagemap_fd);
  // In a forked child: a new thread for this process, keeping the pages
  // on probation (their slots were inherited with the address space).
  bool RestartInChild(Heap& heap, int pagemap_fd);

  // Around fork(2): Pause returns once the evictor is between batches, holds
  // no pool lock and has no page in flight, and holds it there; Resume lets
  // it go on (parent).
  void Pause() { batch_mu_.lock(); }
  void Resume() { batch_mu_.unlock(); }

  // At exit: no more statistics files; returns the live file's path ("" if
  // none) for the caller to remove. The pool gauges are brought up to date
  // first, so that the final statistics do not pair the pool size of the
  // last scan with the contents left after the exit's own refaults.
  const char* StopWritingStats();

  // One full pass. The thread calls it each interval.
  void Pass();

  // In a forked child that cannot watch its heap (the region unregistered,
  // no shim thread running): writes every evicted page back in place and
  // frees its evicted copy, so the child goes on with all its data on plain
  // jemalloc. Returns the number of pages restored.
  size_t RestoreAllInPlace();
  // The same for the pages in the writeback file only, in a forked child
  // that could not copy it (the region not watched yet).
  size_t RestoreFileInPlace();

 private:
  static void* ThreadMain(void* arg);
  size_t Reclaim(const policy::ScanReport& report);
  size_t EvictAllOnce(const policy::ScanReport& report);
  void ScanWrites();
  void AgeRange(size_t from, size_t to, bool written);
  policy::ScanReport BuildReport();
  uint64_t RefaultCostNs();
  void Publish(const policy::Decision& decision);
  bool IsCandidate(PageEntry& e, uint32_t min_age);
  size_t Collect(size_t from, uint32_t min_age, size_t max_pages, size_t* next);
  size_t EvictNow(uint32_t min_age);
  size_t Probe(const policy::Decision& decision);
  void CompressProbation(bool pool_full);
  void MoveOutRange(size_t first, size_t count);
  void MoveOut(size_t first, size_t run);
  void MoveAfterUnsharing(size_t slot);
  bool PoolHasRoom();
  bool WriteBack();
  void CompressStaged(size_t slot, bool pool_full);
  void MoveBack(size_t slot, PageEntry& e);
  void WaitForStolenSlots(size_t first, size_t count);
  void FreeDiscarded(size_t index);
  bool RestoreInPlace(PageEntry& e, PageWord was, char* page);
  size_t RestoreInPlaceIf(bool (*which)(PageState));
  uint64_t Densify(uint64_t evict_cpu_ns);
  uint8_t DenseAgeTicks() const;
  void RefreshGauges();
  void RefreshPoolGauges();
  void WriteStatsFiles();

  Heap* heap_ = nullptr;
  int pagemap_fd_ = -1;
  pthread_t thread_{};
  std::mutex batch_mu_;  // held while pages are in flight or pool is used
  Compressor compressor_;
  policy::ReclaimPolicy policy_{policy::PolicySettings{}};
  // Slot k of the staging area holds region page slot_page_[k] when
  // slot_staged_[k]; slots [0, probation_) are the pages on probation.
  size_t slot_page_[Staging::kSlots];
  bool slot_staged_[Staging::kSlots];
  size_t probation_ = 0;
  size_t cursor_ = 0;  // where the next probation walk starts
  uint64_t scan_ = 0;  // passes so far: the clock pages tick by
  uint64_t start_ms_ = 0;     // when the shim started (monotonic)
  bool evicted_all_ = false;  // COLDHEAP_EVICT_ALL_AT has happened
  uint64_t pool_limit_bytes_ = ~uint64_t{0};  // COLDHEAP_MAX_POOL_PERCENT now
  bool pool_limit_tripped_ = false;  // the limit was reached in this scan
  uint64_t in_scan_limit_hits_ = 0;
  // A writeback freed nothing in this scan because the file refused (its
  // filesystem is full): not tried again before the next scan, or every
  // page would cost a pass over the whole pool.
  bool writeback_stalled_ = false;
  uint64_t last_processed_ = 0;  // pages handled by the previous pass
  uint64_t last_cpu_ns_ = 0;     // and the CPU it took
  // For RefaultCostNs: the handlers' CPU counted as refaults' so far, and
  // the totals it was last computed from.
  uint64_t refault_cpu_ns_ = 0;
  uint64_t last_handler_cpu_ns_ = 0;
  uint64_t last_fault_events_ = 0;
  uint64_t last_refault_events_ = 0;
  // The dense tier's share of the CPU budget (see Densify).
  Recompressor recompressor_;
  int64_t dense_credit_ns_ = 0;
  int64_t dense_debt_ns_ = 0;  // trainings not yet paid back
  uint64_t last_pass_ns_ = 0;
  uint64_t last_refault_cost_ns_ = 0;
  page_region regions_[512];     // PAGEMAP_SCAN output, reused
  unsigned char out_[kPageSize];  // compression output, reused
  char live_stats_path_[128] = {};  // see PrepareLiveStatsPath; "" if none
  std::atomic<bool> exiting_{false};
  uint64_t answered_round_ = 0;  // see CredentialRelay
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_EVICTOR_H_
