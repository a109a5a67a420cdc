// The fault handlers: one thread per CPU, each pinned to its CPU and blocked
// in read(2) on the shared userfaultfd. The kernel hands each missing-page
// event to one reader; measured on our 2-vCPU VM, the handler on the faulting
// thread's own CPU takes 83-99% of them, which avoids the cross-vCPU wake-up
// that dominates a single handler's round trip (15 us vs 50 us p50).
//
// A handler serves an event by the page's state (see page_table.h):
//   untouched           zero-fill a run of up to kFirstTouchRun untouched
//                       pages in one UFFDIO_COPY, so first touch of fresh
//                       memory does not cost a round trip per page
//   compressed / same   decompress (or fill) and UFFDIO_COPY, plus up to
//                       COLDHEAP_FAULT_AROUND evicted neighbours that follow
//   written back        read from the writeback file, decompress, copy
//   staged              copy it back from the evictor's staging slot
//   discarded           free the stale handle, zero-fill
//   resident            a duplicate event, or the program dropped the page
//                       itself: zero-fill, and EEXIST means already there
//   restoring           another handler is on it; its UFFDIO_COPY wakes us
//
// Invariant 4: a handler never calls malloc, touches the region only through
// UFFDIO_* ioctls, and takes only locks that no program thread takes (pool
// class locks, its own fork-pause lock). It waits only for the evictor, which
// itself never waits for a program thread.
#ifndef COLDHEAP_SHIM_FAULT_HANDLER_H_
#define COLDHEAP_SHIM_FAULT_HANDLER_H_

#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "shim/compressor.h"
#include "shim/deferred_frees.h"
#include "shim/heap.h"

namespace coldheap::shim {

inline constexpr size_t kFirstTouchRun = 16;
inline constexpr size_t kMaxFaultAround = 64;

class FaultHandlers {
 public:
  static constexpr int kMaxHandlers = 64;

  // Starts one handler per CPU (at most kMaxHandlers). False if none could
  // be started.
  bool Start(Heap& heap);

  // Around fork(2), in the forking thread: Pause waits for every handler to
  // finish the event in hand and holds them between events; Resume lets the
  // parent's handlers go on. A child starts a fresh set instead.
  void Pause();
  void Resume();

  // CPU time the handler threads have used.
  uint64_t CpuTimeNs() const;

  // Frees the handles the handlers passed on (see deferred_frees.h). Only
  // the evictor calls it, and the forking thread in a child, where the
  // handlers are gone.
  void DrainDeferredFrees(pool::Zpool& pool);

 private:
  struct Handler {
    FaultHandlers* owner = nullptr;
    int cpu = 0;
    pthread_t thread{};
    std::mutex serving;  // held while an event is served; Pause takes it
    Compressor compressor;
    char* buffer = nullptr;  // (1 + kMaxFaultAround) pages, mapped apart
    char* scratch = nullptr;  // one more page, for written-back pages
    uint32_t claimed[1 + kMaxFaultAround];  // page words before the claim
    DeferredFrees frees;  // handles for the evictor to free
  };

  static void* ThreadMain(void* arg);
  void Run(Handler& h);
  // What an event turned out to be, for the statistics.
  enum class Served { kOther, kStagedRefault, kRefault, kDenseRefault };
  Served Serve(Handler& h, uintptr_t address);

  void FillUntouched(size_t index);
  Served Refault(Handler& h, size_t index, uint32_t word);
  bool RememberRefault(PageEntry& e, uint8_t ticks_out);
  bool RestoreRun(Handler& h, size_t index, size_t pages, const uint32_t* was);
  size_t ClaimNeighbours(Handler& h, size_t index);
  bool CopyBackStaged(size_t index);
  void ZeroDiscarded(size_t index, PageState was);
  bool CopyIn(size_t index, const char* src, size_t pages);
  void Finish(size_t index, size_t pages, bool fresh = false);
  void Abandon(size_t index, size_t pages, const uint32_t* was);

  Heap* heap_ = nullptr;
  int count_ = 0;
  Handler handlers_[kMaxHandlers];
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_FAULT_HANDLER_H_
