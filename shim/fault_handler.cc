#include "shim/fault_handler.h"

#include <linux/userfaultfd.h>
#include <sched.h>

#include <atomic>
#include <cerrno>

#include "policy/refault_memory.h"
#include "shim/evicted_copy.h"
#include "shim/log.h"
#include "shim/os.h"
#include "shim/thread.h"

namespace coldheap::shim {
namespace {

// Source of zero pages for UFFDIO_COPY. In .bss and only ever read, so it
// costs the kernel's shared zero page, not memory.
alignas(kPageSize) const char kZeros[kFirstTouchRun * kPageSize] = {};

// How long a refault stops the faulting thread, for the CPU budget (the
// handlers' CPU for refaults is counted by the evictor from their thread
// clocks): the service, as seen by the clock, plus the kernel's round trip
// to a handler and back. The round trip is the measured one (DESIGN.md:
// 15 us for a pinned handler's LZ4 refault whose own work is ~5 us), as
// timing it per event would add two clock reads to every fault.
constexpr uint64_t kFaultRoundTripNs = 10'000;

uint64_t RefaultStallNs(uint64_t service_ns) {
  return service_ns + kFaultRoundTripNs;
}

char* PageOf(uintptr_t address) {
  return reinterpret_cast<char*>(address & ~(kPageSize - 1));
}

void CpuRelax() { __builtin_ia32_pause(); }

}  // namespace

bool FaultHandlers::Start(Heap& heap) {
  heap_ = &heap;
  os::OsResult<void*> doorbell = os::Reserve(kPageSize);
  if (doorbell.ok() &&
      os::Register(heap.uffd, doorbell.value, kPageSize,
                   UFFDIO_REGISTER_MODE_MISSING).ok()) {
    doorbell_ = static_cast<char*>(doorbell.value);
  }
  int cpus = os::NumCpus();
  if (cpus > kMaxHandlers) cpus = kMaxHandlers;
  count_ = 0;
  for (int cpu = 0; cpu < cpus; ++cpu) {
    Handler& h = handlers_[count_];
    h.owner = this;
    h.cpu = cpu;
    os::OsResult<void*> buffer = os::Reserve((2 + kMaxFaultAround) * kPageSize);
    h.buffer = static_cast<char*>(buffer.value);
    h.scratch = h.buffer + (1 + kMaxFaultAround) * kPageSize;
    if (!buffer.ok() ||
        !h.compressor.Init(heap.config->compressor, heap.dense != nullptr) ||
        !StartShimThread(&h.thread, &ThreadMain, &h)) {
      break;
    }
    ++count_;
    running_.fetch_add(1);
  }
  return count_ > 0;
}

// Read from the threads' CPU clocks, once per scan, rather than timed
// around every event: two clock syscalls per event cost 7% of a refault.
void FaultHandlers::DrainDeferredFrees(pool::Zpool& pool) {
  for (int i = 0; i < count_; ++i) handlers_[i].frees.Drain(pool);
}

uint64_t FaultHandlers::CpuTimeNs() const {
  uint64_t total = 0;
  for (int i = 0; i < count_; ++i) total += os::ThreadCpuTimeNs(handlers_[i].thread);
  return total;
}

void FaultHandlers::Pause() {
  for (int i = 0; i < count_; ++i) handlers_[i].serving.lock();
}

void FaultHandlers::Resume() {
  for (int i = 0; i < count_; ++i) handlers_[i].serving.unlock();
}

void* FaultHandlers::ThreadMain(void* arg) {
  auto* h = static_cast<Handler*>(arg);
  (void)os::PinCurrentThreadToCpu(h->cpu);
  h->owner->Run(*h);
  return nullptr;
}

void FaultHandlers::Run(Handler& h) {
  uffd_msg msgs[16];
  bool rang = false;  // a credential round's doorbell (thread.h)
  for (;;) {
    if (rang) AnswerDoorbell(h);
    rang = false;
    os::OsResult<size_t> n = os::ReadEvents(heap_->uffd, msgs, 16);
    if (!n.ok()) {
      if (n.error == EAGAIN) continue;
      // EBADF: a forked child fell back to plain jemalloc and closed the
      // userfaultfd under us (RestoreAndRunPlain), which says so itself.
      if (n.error == EBADF) return;
      LogLine(LogLevel::kError,
              {"fault handler stopped: read(userfaultfd): ", os::ErrnoName(n.error)});
      running_.fetch_sub(1);
      return;
    }
    std::lock_guard<std::mutex> serving(h.serving);
    for (size_t i = 0; i < n.value; ++i) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      if (PageOf(msgs[i].arg.pagefault.address) == doorbell_) {
        rang = true;  // answered at the top of the next turn, not serving
        continue;
      }
      uint64_t start = os::MonotonicNowNs();
      Served served = Serve(h, msgs[i].arg.pagefault.address);
      uint64_t service_ns = os::MonotonicNowNs() - start;
      // Refaults from the pool, by tier; staged pages and first touches
      // are faults only.
      const int tier = served == Served::kDenseRefault ? 1
                       : served == Served::kRefault    ? 0
                                                       : Stats::kNotARefault;
      heap_->stats->RecordFaultLatency(service_ns, tier);
      if (served == Served::kOther) continue;
      heap_->stats->refault_stall_ns.fetch_add(RefaultStallNs(service_ns),
                                               std::memory_order_relaxed);
    }
  }
}

int FaultHandlers::RingDoorbells() {
  if (doorbell_ == nullptr) return 0;
  const int handlers = running_.load();
  for (int i = 0; i < handlers; ++i) {
    // Missing again, so that the read below faults; it returns once a
    // handler that had not answered yet has answered and filled the page.
    (void)os::DontNeed(doorbell_, kPageSize);
    (void)*static_cast<volatile char*>(doorbell_);
  }
  return handlers;
}

void FaultHandlers::AnswerDoorbell(Handler& h) {
  CredentialRelay& relay = ShimCredentialRelay();
  const bool answered = relay.Answer(&h.answered_round);
  // The ringer waits for this page: retry what the kernel may refuse for
  // a moment (EAGAIN while the address space changes, ENOMEM).
  for (;;) {
    os::OsResult<size_t> filled = os::ZeroPage(heap_->uffd, doorbell_, kPageSize);
    if (filled.ok() || (filled.error != EAGAIN && filled.error != ENOMEM)) break;
  }
  if (answered) relay.HoldUntilReleased(h.answered_round);
}

FaultHandlers::Served FaultHandlers::Serve(Handler& h, uintptr_t address) {
  char* page = PageOf(address);
  if (heap_->staging.Contains(page)) {
    // Only the evictor touches staging, and only pages it moved in; a fault
    // there is a bug (a slot emptied while its page was still staged) that
    // loses that page. Zero-fill rather than leave the reader hanging, and
    // say so once, so that it is not silent.
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) {
      LogLine(LogLevel::kError,
              {"bug: a fault in the staging area; a page read back as zeros"});
    }
    (void)os::ZeroPage(heap_->uffd, page, kPageSize);
    return Served::kOther;
  }
  if (!heap_->region->Contains(page)) return Served::kOther;
  size_t index = heap_->region->PageIndex(page);
  PageEntry& e = heap_->table->at(index);
  for (;;) {
    uint32_t word = PageTable::LoadWord(e);
    switch (PageWord::Unpack(word).state) {
      case PageState::kUntouched:
        if (!PageTable::Claim(e, word, PageState::kRestoring)) continue;
        FillUntouched(index);
        return Served::kOther;
      case PageState::kResident:
        // A duplicate event, or the program dropped the page itself. Claim it
        // first: the word just read may be stale, and if the evictor moved
        // the page out meanwhile, zeros must not land in the hole it left.
        if (!PageTable::Claim(e, word, PageState::kRestoring)) continue;
        if (!CopyIn(index, kZeros, 1)) {
          Abandon(index, 1, &word);
        } else {
          Finish(index, 1);
        }
        return Served::kOther;
      case PageState::kClaimed:
        CpuRelax();  // the evictor is moving it; that takes microseconds
        continue;
      case PageState::kStaged:
        if (!PageTable::Claim(e, word, PageState::kRestoring)) continue;
        return CopyBackStaged(index) ? Served::kStagedRefault : Served::kOther;
      case PageState::kRestoring:
        return Served::kOther;  // the owner's UFFDIO_COPY wakes this fault too
      case PageState::kCompressed:
      case PageState::kSameFilled:
      case PageState::kWrittenBack:
        if (!PageTable::Claim(e, word, PageState::kRestoring)) continue;
        return Refault(h, index, word);
      case PageState::kDiscarded:
      case PageState::kDiscardedSlot:
        if (!PageTable::Claim(e, word, PageState::kRestoring)) continue;
        ZeroDiscarded(index, PageWord::Unpack(word).state);
        return Served::kOther;
    }
  }
}

// First touch: the faulting page is claimed; claim the untouched pages that
// follow it in the heap and fill them all with one ioctl.
void FaultHandlers::FillUntouched(size_t index) {
  size_t end = index + kFirstTouchRun;
  size_t used = heap_->region->used_pages();
  if (end > used) end = used;
  size_t pages = 1;
  while (index + pages < end &&
         PageTable::Transition(heap_->table->at(index + pages),
                               PageState::kUntouched, PageState::kRestoring)) {
    ++pages;
  }
  if (!CopyIn(index, kZeros, pages)) return Abandon(index, pages, nullptr);
  Finish(index, pages, /*fresh=*/true);
  heap_->stats->first_touch_faults.fetch_add(1, std::memory_order_relaxed);
  heap_->stats->first_touch_pages.fetch_add(pages, std::memory_order_relaxed);
}

// An evicted page: restore it and the evicted neighbours that follow it
// (fault-around), install them with one ioctl, then free their pool copies.
// The faulting page goes in first, alone, so its thread runs again after
// one decompression; the neighbours follow in a second ioctl (which wakes
// anyone who touched one of them meanwhile). Measured with one copy for
// all: refault p50 40 us with 8 neighbours vs 20 us without.
FaultHandlers::Served FaultHandlers::Refault(Handler& h, size_t index,
                                             uint32_t word) {
  h.claimed[0] = word;
  PageEntry& e = heap_->table->at(index);
  uint8_t ticks_out = e.age.load(std::memory_order_relaxed);
  if (!RestoreRun(h, index, 1, &h.claimed[0])) return Served::kOther;
  if (!RememberRefault(e, ticks_out)) {
    heap_->stats->unlearned_refaults.fetch_add(1, std::memory_order_relaxed);
  }
  heap_->stats->refaults.fetch_add(1, std::memory_order_relaxed);
  size_t more = ClaimNeighbours(h, index);
  if (more > 0 && RestoreRun(h, index + 1, more, &h.claimed[1])) {
    heap_->stats->fault_around_pages.fetch_add(more, std::memory_order_relaxed);
  }
  if (PageWord::Unpack(word).codec == 0) return Served::kRefault;
  heap_->stats->dense_refaults.fetch_add(1, std::memory_order_relaxed);
  return Served::kDenseRefault;
}

// Judges a refault of page `e` by how long it stayed out (`ticks_out`, its
// age while out, in its own ticks) and updates its refault level: see
// policy/refault_memory.h. Only the page the program asked for is judged;
// fault-around neighbours were not. True if its level rose (the page
// learned from it).
bool FaultHandlers::RememberRefault(PageEntry& e, uint8_t ticks_out) {
  auto cold_age = static_cast<uint32_t>(
      heap_->stats->cold_age_scans.load(std::memory_order_relaxed));
  uint8_t level = e.refault_level.load(std::memory_order_relaxed);
  uint8_t next = policy::LevelAfterRefault(level, ticks_out, cold_age);
  e.refault_level.store(next, std::memory_order_relaxed);
  if (policy::IsMistake(ticks_out, cold_age)) {
    heap_->stats->mistakes.fetch_add(1, std::memory_order_relaxed);
  }
  return next > level;
}

// Restores `pages` claimed pages from `index`, whose words before the claim
// are was[0, pages): decompress, copy, forget the evicted copies.
bool FaultHandlers::RestoreRun(Handler& h, size_t index, size_t pages,
                               const uint32_t* was) {
  for (size_t k = 0; k < pages; ++k) {
    ReadEvictedCopy(*heap_, h.compressor, heap_->table->at(index + k),
                    PageWord::Unpack(was[k]), h.buffer + k * kPageSize, h.scratch);
  }
  if (!CopyIn(index, h.buffer, pages)) {
    Abandon(index, pages, was);
    return false;
  }
  for (size_t k = 0; k < pages; ++k) {
    DropEvictedCopy(*heap_, heap_->table->at(index + k), PageWord::Unpack(was[k]),
                    &h.frees);
  }
  Finish(index, pages);
  return true;
}

size_t FaultHandlers::ClaimNeighbours(Handler& h, size_t index) {
  size_t limit = heap_->config->fault_around_pages;
  size_t used = heap_->region->used_pages();
  size_t n = 0;
  while (n < limit && index + 1 + n < used) {
    PageEntry& e = heap_->table->at(index + 1 + n);
    uint32_t word = PageTable::LoadWord(e);
    PageState s = PageWord::Unpack(word).state;
    if (s != PageState::kCompressed && s != PageState::kSameFilled) break;
    if (!PageTable::Claim(e, word, PageState::kRestoring)) break;
    h.claimed[1 + n] = word;
    ++n;
  }
  return n;
}

bool FaultHandlers::CopyBackStaged(size_t index) {
  PageEntry& e = heap_->table->at(index);
  uint8_t ticks_out = e.age.load(std::memory_order_relaxed);
  // The slot holds the only copy, and the evictor, seeing the page taken,
  // empties the slot once we are done: it cannot be handed back. ENOMEM is
  // the kernel short of a page for a moment: retry, yielding.
  for (int tries = 0; !CopyIn(index, heap_->staging.Slot(e.payload), 1); ++tries) {
    if (tries >= 8) sched_yield();
  }
  Finish(index, 1);
  (void)RememberRefault(e, ticks_out);
  heap_->stats->staged_refaults.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// An evicted copy that jemalloc purged: the page reads zeros now.
void FaultHandlers::ZeroDiscarded(size_t index, PageState was) {
  FreeDiscardedPayload(*heap_, was, heap_->table->at(index).payload);
  heap_->stats->discarded_pages.fetch_add(1, std::memory_order_relaxed);
  if (!CopyIn(index, kZeros, 1)) return Abandon(index, 1, nullptr);
  Finish(index, 1, /*fresh=*/true);
}

// UFFDIO_COPY of `pages` pages from `src` to the region at `index`. A page
// found already present counts as in place (os::Copy wakes its waiters):
// it is there, which is all a waiting thread needs.
bool FaultHandlers::CopyIn(size_t index, const char* src, size_t pages) {
  char* dst = heap_->region->PageAddress(index);
  size_t len = pages * kPageSize;
  size_t done = 0;
  while (done < len) {
    os::OsResult<size_t> r =
        os::Copy(heap_->uffd, dst + done, src + done, len - done);
    done += r.value;
    if (r.ok()) return true;
    if (r.error != EAGAIN) return false;
  }
  return true;
}

// A fresh page (first touch, or reused after a purge) holds new data, so
// the mistakes remembered for the old data are forgotten.
void FaultHandlers::Finish(size_t index, size_t pages, bool fresh) {
  for (size_t k = 0; k < pages; ++k) {
    PageEntry& e = heap_->table->at(index + k);
    e.age.store(0, std::memory_order_relaxed);
    if (fresh) e.refault_level.store(0, std::memory_order_relaxed);
    PageTable::Publish(e, PageState::kResident);
  }
}

// The kernel refused the copy (out of memory, or the process is exiting):
// put the claimed pages back as they were, so the woken thread faults again
// and a later event retries.
void FaultHandlers::Abandon(size_t index, size_t pages, const uint32_t* was) {
  for (size_t k = 0; k < pages; ++k) {
    PageEntry& e = heap_->table->at(index + k);
    e.word.store(was != nullptr ? was[k] : PageWord::Pack(PageState::kUntouched),
                 std::memory_order_release);
  }
  // The faulting thread sleeps until woken: a wake the kernel refuses is
  // tried again (UFFDIO_WAKE fails only on a bad range, which would be ours).
  constexpr int kTries = 8;
  for (int i = 0; i < kTries; ++i) {
    if (os::Wake(heap_->uffd, heap_->region->PageAddress(index), pages * kPageSize).ok()) {
      return;
    }
  }
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    LogLine(LogLevel::kError,
            {"bug: UFFDIO_WAKE keeps failing; a thread may stay blocked"});
  }
}

}  // namespace coldheap::shim
