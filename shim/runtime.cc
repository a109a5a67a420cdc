// Start-up, fork and exit: wires the region, page table, pool, fault
// handlers and evictor together, or leaves the program on plain jemalloc
// with one stderr line saying why (invariant 5).
//
// Order at start-up matters:
//   1. configuration; COLDHEAP_ENABLE=0 stops here
//   2. the internal arena, for the shim's own threads (thread.h)
//   3. userfaultfd with WP_ASYNC and MOVE; the region, the staging slots and
//      the page table; registration; /proc/self/pagemap with PAGEMAP_SCAN
//   4. the pool, the fault handlers, the evictor
//   5. only then jemalloc's hooks: from here on the heap grows in the region
// Anything failing before step 5 is undone and the program runs on plain
// jemalloc; nothing of its heap is in the region yet.
//
// fork(2): the prepare handler pauses the evictor between batches and the
// fault handlers between events, so no page is in flight and no pool lock is
// held. The child gets a fresh userfaultfd over the same region (the parent's
// registration does not survive fork without EVENT_FORK, which needs
// CAP_SYS_PTRACE) and fresh threads; its evicted pages are still described by
// its copy of the page table and the pool. A child that cannot get its own
// userfaultfd (e.g. a daemon that dropped the right before forking workers)
// has every evicted page written back in place and runs on plain jemalloc.
// vfork and posix_spawn share the parent's address space and are served by
// the parent's handlers.
//
// set*id() (credentials.h): before glibc applies the change to every thread,
// our threads take the calling thread's capabilities (thread.h says why).
// One such round at a time, and none across a fork.
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <mutex>
#include <new>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

#include "pool/default_registry.h"
#include "shim/config.h"
#include "shim/credentials.h"
#include "shim/evictor.h"
#include "shim/extent_hooks.h"
#include "shim/fault_handler.h"
#include "shim/heap.h"
#include "shim/log.h"
#include "shim/os.h"
#include "shim/page_table.h"
#include "shim/region.h"
#include "shim/stats.h"
#include "shim/thread.h"

namespace coldheap::shim {
namespace {

struct Runtime {
  Config config;
  Region region;
  PageTable table;
  Stats stats;
  pool::ZpoolPtr pool;
  Heap heap;
  FaultHandlers handlers;
  Evictor evictor;
  WritebackFile writeback;
  DenseTier dense;
  int pagemap_fd = -1;
  bool active = false;
  pid_t pid = 0;  // whose threads ours are (a vfork child shares `runtime`)
};

// Never destroyed: our threads run until the process's last instruction.
alignas(Runtime) unsigned char runtime_storage[sizeof(Runtime)];
Runtime* runtime = nullptr;

// Held through a credential round and the set*id() call it precedes, and
// from fork's prepare handler to its parent or child handler.
std::mutex credential_mu;
// Whether the set*id() call in progress concerns our threads (under
// credential_mu).
bool credential_change_engaged = false;

void Disable(absl::string_view why) {
  LogLine(LogLevel::kError, {"disabled, running on plain jemalloc: ", why});
}

// Userfaultfd and its registrations. On failure the userfaultfd is closed,
// which unregisters what was registered: a watched range that nobody serves
// would hang its next touch.
absl::Status WatchRegion(Runtime& rt) {
  absl::StatusOr<os::Userfaultfd> uffd = os::OpenUserfaultfd(
      {.required_features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE});
  if (!uffd.ok()) return uffd.status();
  if (!os::Register(uffd->fd, rt.region.base(), rt.region.bytes()).ok() ||
      !os::Register(uffd->fd, rt.heap.staging.base,
                    Staging::kSlots * kPageSize, UFFDIO_REGISTER_MODE_MISSING)
           .ok()) {
    (void)os::CloseFd(uffd->fd);
    return absl::UnavailableError("UFFDIO_REGISTER of the region failed");
  }
  absl::StatusOr<int> pagemap = os::OpenPagemap();
  if (!pagemap.ok() || !os::PagemapScanSupported(*pagemap)) {
    (void)os::CloseFd(uffd->fd);
    return absl::UnavailableError(
        "PAGEMAP_SCAN unavailable (Linux 6.7 or later needed)");
  }
  rt.heap.uffd = uffd->fd;
  rt.pagemap_fd = *pagemap;
  return absl::OkStatus();
}

// jemalloc caches address lookups in 16 slots, one per GiB, repeating every
// 16 GiB. With a region of a multiple of 16 GiB, the heap's first GiB and
// the memory just above the region share a slot and evict each other on
// every free (1.47x the CPU of plain jemalloc per malloc+free, measured). An
// unused 8 GiB of address space above the region puts them 8 slots apart.
constexpr size_t kRegionSpacer = size_t{8} << 30;

// Reserves the region, the staging slots and the page table.
bool MapRegion(Runtime& rt) {
  os::OsResult<void*> region = os::Reserve(rt.config.region_size + kRegionSpacer);
  os::OsResult<void*> staging = os::Reserve(Staging::kSlots * kPageSize);
  size_t pages = rt.config.region_size / kPageSize;
  os::OsResult<void*> table = os::Reserve(pages * sizeof(PageEntry));
  if (!region.ok() || !staging.ok() || !table.ok()) {
    Disable("could not reserve the region (COLDHEAP_REGION_SIZE)");
    return false;
  }
  new (&rt.region) Region(static_cast<char*>(region.value), rt.config.region_size);
  rt.heap.staging.base = static_cast<char*>(staging.value);
  rt.table = PageTable(static_cast<PageEntry*>(table.value), pages);
  return true;
}

bool CreatePool(Runtime& rt) {
  absl::string_view type =
      rt.config.zpool == ZpoolKind::kZbud ? "zbud" : pool::kDefaultZpoolType;
  pool::ZpoolOps ops;
  if (rt.config.has_writeback_file()) {
    absl::Status opened = rt.writeback.Open(rt.config.writeback_file);
    if (opened.ok()) {
      rt.heap.writeback = &rt.writeback;
      ops = {&WriteBackObject, &rt.heap};
    } else {
      LogLine(LogLevel::kError, {opened.message()});  // and go on without
    }
  }
  absl::StatusOr<pool::ZpoolPtr> pool =
      pool::DefaultZpoolRegistry().CreatePool(type, "coldheap", ops,
                                              os::PoolPageSource());
  if (!pool.ok()) {
    Disable(pool.status().message());
    return false;
  }
  rt.pool = std::move(*pool);
  return true;
}

// Without its context the shim runs on, with the LZ4 tier alone.
void StartDenseTier(Runtime& rt) {
  if (rt.config.dense == DenseKind::kOff) return;
  if (!rt.dense.Init(static_cast<int>(rt.config.dense_level))) {
    LogLine(LogLevel::kError,
            {"COLDHEAP_DENSE: could not map the zstd context; running without "
             "a dense tier"});
    return;
  }
  rt.heap.dense = &rt.dense;
}

bool StartThreads(Runtime& rt) {
  if (!rt.handlers.Start(rt.heap)) {
    Disable("could not start the fault handler threads");
    return false;
  }
  if (!rt.evictor.Start(rt.heap, rt.pagemap_fd)) {
    // Handlers are running and harmless with nothing evicted.
    Disable("could not start the evictor thread");
    return false;
  }
  return true;
}

void AtExit() {
  const char* live = runtime->evictor.StopWritingStats();
  if (live[0] != '\0') unlink(live);
  const Config& c = runtime->config;
  if (c.stats == StatsDestination::kStderr) WriteStats(runtime->stats, 2);
  FinishConfiguredStats(runtime->stats, c);
}

void PrepareFork() {
  credential_mu.lock();
  if (runtime == nullptr || !runtime->active) return;
  runtime->evictor.Pause();
  // Before the handlers: it may wait for an earlier child's copy.
  runtime->writeback.PrepareFork();
  runtime->handlers.Pause();
}

void ParentAfterFork() {
  if (runtime != nullptr && runtime->active) {
    runtime->writeback.ParentAfterFork();
    runtime->handlers.Resume();
    runtime->evictor.Resume();
  }
  credential_mu.unlock();
}

// A forked child that could not watch its heap (e.g. a daemon that dropped
// the right to use userfaultfd before forking workers): without a handler an
// evicted page would read zeros, so every one is put back now, and the child
// runs on plain jemalloc (the extent hooks stay, as cheap bookkeeping).
void RestoreAndRunPlain(Runtime& rt, absl::string_view why) {
  rt.active = false;
  // Unregistered first: a handler already started holds the userfaultfd
  // open in its read(2), so closing it alone would leave the region
  // watched, and the restore's own writes would fault to that handler,
  // which waits for the restore (found by tests/shim/fault_sweep_test).
  if (rt.heap.uffd >= 0) {
    (void)os::Unregister(rt.heap.uffd, rt.region.base(), rt.region.bytes());
    (void)os::Unregister(rt.heap.uffd, rt.heap.staging.base,
                         Staging::kSlots * kPageSize);
    (void)os::CloseFd(rt.heap.uffd);
  }
  if (rt.pagemap_fd >= 0) (void)os::CloseFd(rt.pagemap_fd);
  size_t restored = rt.evictor.RestoreAllInPlace();
  LineWriter line;
  line.Append("forked child runs on plain jemalloc (").Append(why)
      .Append("); its ").AppendUint(restored)
      .Append(" evicted pages were restored in place");
  line.Write();
}

// A forked child without a copy of the writeback file (ENOSPC, EIO): its
// pages there are read back in place while the parent still leaves their
// slots alone, and it writes nothing back from now on.
void ReadBackWrittenPages(Runtime& rt) {
  size_t restored = rt.evictor.RestoreFileInPlace();
  rt.writeback.LeaveToParent();
  rt.heap.writeback = nullptr;
  LineWriter line;
  line.Append("forked child could not copy the writeback file; its ")
      .AppendUint(restored)
      .Append(" written-back pages were read back in place and it writes "
              "nothing back");
  line.Write();
}

// In the child only this thread exists, and the region is unwatched: until
// it is registered again, a touch of an evicted page would read zeros.
void ChildAfterFork() {
  credential_mu.unlock();  // this thread's, from PrepareFork
  // A parent's thread may have held the relay's lock; none of them is here.
  ShimCredentialRelay().ResetAfterFork();
  if (runtime == nullptr || !runtime->active) return;
  Runtime& rt = *runtime;
  // Nothing allocated here may land in the region: until the pages are
  // watched again (or restored), a touch of an evicted one reads zeros, and
  // a restore would overwrite what was written there.
  ScopedInternalArena arena;
  (void)os::CloseFd(rt.heap.uffd);
  (void)os::CloseFd(rt.pagemap_fd);
  rt.heap.uffd = rt.pagemap_fd = -1;  // the parent's; WatchRegion sets ours
  if (rt.heap.writeback != nullptr &&
      !rt.writeback.CopyForChild(rt.config.writeback_file)) {
    ReadBackWrittenPages(rt);
  }
  rt.writeback.ChildDone();
  // The paused threads' locks are held by threads that no longer exist;
  // what they had not freed yet is freed here.
  rt.handlers.DrainDeferredFrees(*rt.pool);
  new (&rt.handlers) FaultHandlers();
  absl::Status watched = WatchRegion(rt);
  if (!watched.ok()) return RestoreAndRunPlain(rt, watched.message());
  if (!rt.handlers.Start(rt.heap)) {
    return RestoreAndRunPlain(rt, "could not start the fault handler threads");
  }
  if (!rt.evictor.RestartInChild(rt.heap, rt.pagemap_fd)) {
    return RestoreAndRunPlain(rt, "could not start the evictor thread");
  }
  rt.pid = getpid();
}

void Start() {
  static bool started = false;
  if (started) return;
  started = true;
  Config config = LoadConfig();
  if (!config.enable) return;  // COLDHEAP_ENABLE=0 is not an error
  // Debian's Abseil checks every absl::Mutex acquisition for deadlock
  // cycles under one process-wide lock, which serialises the pool's
  // per-class locks; the pool's lock order is fixed, so turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  runtime = new (runtime_storage) Runtime();
  Runtime& rt = *runtime;
  rt.config = config;
  rt.heap.config = &rt.config;
  rt.heap.region = &rt.region;
  rt.heap.table = &rt.table;
  rt.heap.stats = &rt.stats;
  rt.heap.handlers = &rt.handlers;
  if (!CreateInternalArena()) return Disable("jemalloc refused an arena");
  if (!MapRegion(rt)) return;
  if (absl::Status watched = WatchRegion(rt); !watched.ok()) {
    return Disable(watched.message());
  }
  if (!CreatePool(rt)) return;
  rt.heap.pool = rt.pool.get();
  StartDenseTier(rt);
  if (!StartThreads(rt)) return;
  unsigned hooked = InstallExtentHooks(RegionExtentHooks(rt.heap));
  if (hooked == 0) return Disable("jemalloc refused the extent hooks");
  if (LogEnabled(LogLevel::kInfo)) {
    LineWriter line;
    line.Append("watching a region of ").AppendUint(rt.region.bytes() >> 20)
        .Append(" MiB; ").AppendUint(hooked).Append(" arenas hooked");
    line.Write();
  }
  rt.active = true;
  rt.pid = getpid();
  RemoveStaleStatsFiles();
  pthread_atfork(&PrepareFork, &ParentAfterFork, &ChildAfterFork);
  atexit(&AtExit);
}

}  // namespace

void BeginCredentialChange() {
  credential_mu.lock();
  // A vfork child's set*id() reaches the child alone, not our threads.
  credential_change_engaged =
      runtime != nullptr && runtime->active && getpid() == runtime->pid;
  if (!credential_change_engaged) return;
  CredentialRelay& relay = ShimCredentialRelay();
  if (!relay.Ask()) return;
  // The evictor first, while the handlers still serve faults: in a pass it
  // may fault (its first allocation sets up jemalloc's thread cache in the
  // region), and it answers only between passes. It then waits for the
  // round to end, and the held handlers cannot be needed.
  relay.AwaitAnswers(1);
  const int handlers = runtime->handlers.RingDoorbells();
  relay.AwaitAnswersAndRelease(handlers + 1);
}

void EndCredentialChange() {
  if (credential_change_engaged) ShimCredentialRelay().Settle();
  credential_mu.unlock();
}

// Runs when the dynamic loader initialises libcoldheap.so, before the
// program's own constructors.
__attribute__((constructor)) void ColdheapInit() { Start(); }

}  // namespace coldheap::shim
