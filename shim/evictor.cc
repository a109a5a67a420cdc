#include "shim/evictor.h"

#include <sched.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "shim/log.h"
#include "shim/os.h"
#include "shim/thread.h"

namespace coldheap::shim {
namespace {

constexpr uint8_t kMaxAge = 255;
constexpr uint8_t kMaxBackoffScans = 64;

// The word every 8 bytes of the page repeats, if it is same-filled.
bool SameFilled(const unsigned char* page, uint64_t* value) {
  const auto* words = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 1; i < kPageSize / sizeof(uint64_t); ++i) {
    if (words[i] != words[0]) return false;
  }
  *value = words[0];
  return true;
}

void SleepMs(uint64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000),
              static_cast<long>((ms % 1000) * 1'000'000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

bool Evictor::Start(Heap& heap, int pagemap_fd) {
  heap_ = &heap;
  pagemap_fd_ = pagemap_fd;
  if (!compressor_.Init(heap.config->compressor)) return false;
  if (!PrepareLiveStatsPath(live_stats_path_, sizeof(live_stats_path_))) {
    live_stats_path_[0] = '\0';
  }
  return StartShimThread(&thread_, &ThreadMain, this);
}

void* Evictor::ThreadMain(void* arg) {
  auto* self = static_cast<Evictor*>(arg);
  for (;;) {
    SleepMs(self->heap_->config->scan_interval_ms);
    uint64_t cpu_start = os::ThreadCpuTimeNs();
    self->Pass();
    self->heap_->stats->evictor_cpu_ns.fetch_add(
        os::ThreadCpuTimeNs() - cpu_start, std::memory_order_relaxed);
  }
  return nullptr;
}

void Evictor::Pass() {
  {
    std::lock_guard<std::mutex> lock(batch_mu_);
    ScanWrites();
  }
  EvictColdPages();
  RefreshGauges();
  heap_->stats->scans.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(batch_mu_);
  if (exiting_.load()) return;
  const Config& config = *heap_->config;
  if (config.stats == StatsDestination::kFile) {
    WriteStatsFile(*heap_->stats, config.stats_path);
  }
  if (live_stats_path_[0] != '\0') {
    WriteStatsFile(*heap_->stats, live_stats_path_);
  }
}

// Ages every resident page by one scan, except those written since the last
// scan, whose age drops to 0. Runs of the PAGEMAP_SCAN answer are sorted, so
// one walk over the used part of the region does it.
void Evictor::ScanWrites() {
  Region& region = *heap_->region;
  size_t used = region.used_pages();
  char* start = region.base();
  char* end = region.PageAddress(used);
  size_t aged_to = 0;  // pages below this index are done
  while (start < end) {
    os::OsResult<os::ScanResult> r = os::ScanWrittenAndProtect(
        pagemap_fd_, start, static_cast<size_t>(end - start), regions_,
        sizeof(regions_) / sizeof(regions_[0]));
    if (!r.ok()) break;  // ages stay as they are; the next scan retries
    for (size_t i = 0; i < r.value.regions; ++i) {
      size_t from = region.PageIndex(reinterpret_cast<void*>(regions_[i].start));
      size_t to = region.PageIndex(reinterpret_cast<void*>(regions_[i].end));
      AgeRange(aged_to, from, false);
      AgeRange(from, to, true);
      aged_to = to;
    }
    char* walk_end = reinterpret_cast<char*>(r.value.walk_end);
    if (walk_end <= start) break;
    AgeRange(aged_to, region.PageIndex(walk_end), false);
    aged_to = region.PageIndex(walk_end);
    start = walk_end;
  }
}

void Evictor::AgeRange(size_t from, size_t to, bool written) {
  for (size_t i = from; i < to; ++i) {
    PageEntry& e = heap_->table->at(i);
    if (PageTable::Load(e).state != PageState::kResident) continue;
    uint8_t age = e.age.load(std::memory_order_relaxed);
    if (written) {
      e.age.store(0, std::memory_order_relaxed);
    } else if (age < kMaxAge) {
      e.age.store(age + 1, std::memory_order_relaxed);
    }
  }
}

bool Evictor::IsCandidate(PageEntry& e, uint8_t cold_scans) {
  if (PageTable::Load(e).state != PageState::kResident) return false;
  if (e.skip_scans > 0) {
    --e.skip_scans;
    return false;
  }
  return e.age.load(std::memory_order_relaxed) >= cold_scans;
}

// The simple cold rule: resident, and neither written nor restored for
// COLDHEAP_COLD_AGE. Pages are taken in address order, a batch at a time,
// holding the batch lock only per batch so fork waits at most one batch.
void Evictor::EvictColdPages() {
  const Config& config = *heap_->config;
  uint64_t scans = config.cold_age_ms / config.scan_interval_ms;
  uint8_t cold_scans = scans > kMaxAge ? kMaxAge : static_cast<uint8_t>(scans);
  size_t used = heap_->region->used_pages();
  Batch batch;
  for (size_t i = 0; i < used; ++i) {
    PageEntry& e = heap_->table->at(i);
    if (PageTable::Load(e).state == PageState::kDiscarded) FreeDiscarded(i);
    if (!IsCandidate(e, cold_scans)) continue;
    batch.index[batch.count++] = i;
    if (batch.count == Staging::kSlots) {
      EvictBatch(batch);
      batch.count = 0;
    }
  }
  if (batch.count > 0) EvictBatch(batch);
}

void Evictor::EvictBatch(Batch& batch) {
  std::lock_guard<std::mutex> lock(batch_mu_);
  size_t first = 0;
  while (first < batch.count) {
    // A run: consecutive region pages go out with one UFFDIO_MOVE.
    size_t run = 1;
    while (first + run < batch.count &&
           batch.index[first + run] == batch.index[first] + run) {
      ++run;
    }
    MoveOut(batch, first, run);
    for (size_t k = first; k < first + run; ++k) {
      if (batch.staged[k]) CompressStaged(k, batch.index[k]);
    }
    first += run;
  }
  WaitForStolenSlots(batch);
  (void)os::DontNeed(heap_->staging.Slot(0), batch.count * kPageSize);
}

// Claims and moves out the run batch[first, first + run), slot k taking
// batch.index[k], and marks in batch.staged which pages made it. A page that
// cannot move is published back: resident if it is shared copy-on-write
// (EBUSY), untouched if it was a hole (the program dropped it: it reads zeros).
void Evictor::MoveOut(Batch& batch, size_t first, size_t run) {
  size_t claimed = 0;
  while (claimed < run) {
    PageEntry& e = heap_->table->at(batch.index[first + claimed]);
    e.payload = first + claimed;  // the slot, for a fault that steals it
    if (!PageTable::Transition(e, PageState::kResident, PageState::kClaimed)) {
      break;
    }
    ++claimed;
  }
  for (size_t k = first; k < first + run; ++k) batch.staged[k] = false;
  size_t done = 0;  // pages of the claimed run settled so far
  while (done < claimed) {
    size_t k = first + done;
    os::OsResult<size_t> r =
        os::Move(heap_->uffd, heap_->staging.Slot(k),
                 heap_->region->PageAddress(batch.index[k]),
                 (claimed - done) * kPageSize);
    size_t moved = r.value / kPageSize;
    for (size_t m = 0; m < moved; ++m) {
      batch.staged[k + m] = true;
      PageTable::Publish(heap_->table->at(batch.index[k + m]), PageState::kStaged);
    }
    done += moved;
    if (r.ok() || (r.error == EAGAIN && moved > 0)) continue;
    if (done == claimed) break;
    // The page at `done` did not move: settle it and carry on after it.
    PageState back = PageState::kResident;
    if (r.error == ENOENT) back = PageState::kUntouched;
    if (r.error == EBUSY) {
      heap_->stats->reject_busy.fetch_add(1, std::memory_order_relaxed);
    }
    PageTable::Publish(heap_->table->at(batch.index[first + done]), back);
    ++done;
  }
}

// Turns the staged page in `slot` into its evicted form. The entry is
// re-claimed first: if a fault got there before us (kRestoring or later),
// the page went back from the slot and our work is dropped.
void Evictor::CompressStaged(size_t slot, size_t index) {
  PageEntry& e = heap_->table->at(index);
  const auto* page = reinterpret_cast<unsigned char*>(heap_->staging.Slot(slot));
  Stats& stats = *heap_->stats;
  uint64_t fill;
  if (SameFilled(page, &fill)) {
    if (!PageTable::Transition(e, PageState::kStaged, PageState::kClaimed)) return;
    e.payload = fill;
    PageTable::Publish(e, PageState::kSameFilled);
    stats.same_filled_pages.fetch_add(1, std::memory_order_relaxed);
    stats.evicted_pages.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  size_t size = compressor_.Compress(page, out_, kMaxCompressedSize);
  if (size == 0) {
    stats.reject_compress_poor.fetch_add(1, std::memory_order_relaxed);
    return MoveBack(slot, index, e);
  }
  absl::StatusOr<pool::Handle> handle = heap_->pool->Malloc(size);
  if (!handle.ok()) return MoveBack(slot, index, e);
  {
    pool::MappedObject object(*heap_->pool, *handle, pool::MapMode::kWriteOnly);
    memcpy(object.data(), out_, size);
  }
  if (!PageTable::Transition(e, PageState::kStaged, PageState::kClaimed)) {
    heap_->pool->Free(*handle);
    return;
  }
  e.payload = *handle;
  PageTable::Publish(e, PageState::kCompressed, static_cast<uint16_t>(size));
  stats.stored_pages.fetch_add(1, std::memory_order_relaxed);
  stats.compressed_bytes.fetch_add(size, std::memory_order_relaxed);
  stats.evicted_pages.fetch_add(1, std::memory_order_relaxed);
}

// A page not worth storing goes back where it was. UFFDIO_COPY, not MOVE:
// the hole it left may carry a write-protect marker, which MOVE refuses.
void Evictor::MoveBack(size_t slot, size_t index, PageEntry& e) {
  if (!PageTable::Transition(e, PageState::kStaged, PageState::kClaimed)) return;
  char* dst = heap_->region->PageAddress(index);
  os::OsResult<size_t> r;
  do {
    r = os::Copy(heap_->uffd, dst, heap_->staging.Slot(slot), kPageSize);
  } while (!r.ok() && r.error == EAGAIN && r.value == 0);
  uint8_t tries = e.poor_compressions < 6 ? e.poor_compressions + 1 : 6;
  e.poor_compressions = tries;
  e.skip_scans = static_cast<uint8_t>(1u << tries) > kMaxBackoffScans
                     ? kMaxBackoffScans
                     : static_cast<uint8_t>(1u << tries);
  PageTable::Publish(e, PageState::kResident);
}

// A fault that stole a staged page copies it out of its slot; the slots can
// be emptied only once every such copy is done.
void Evictor::WaitForStolenSlots(const Batch& batch) {
  for (size_t k = 0; k < batch.count; ++k) {
    const PageEntry& e = heap_->table->at(batch.index[k]);
    for (int spins = 0;
         PageTable::Load(e).state == PageState::kRestoring; ++spins) {
      if (spins > 1000) sched_yield();
    }
  }
}

void Evictor::FreeDiscarded(size_t index) {
  std::lock_guard<std::mutex> lock(batch_mu_);  // pool use: see Pause()
  PageEntry& e = heap_->table->at(index);
  if (!PageTable::Transition(e, PageState::kDiscarded, PageState::kClaimed)) return;
  heap_->pool->Free(e.payload);
  PageTable::Publish(e, PageState::kUntouched);
  heap_->stats->discarded_pages.fetch_add(1, std::memory_order_relaxed);
}

void Evictor::RefreshGauges() {
  std::lock_guard<std::mutex> lock(batch_mu_);
  Stats& stats = *heap_->stats;
  size_t used = heap_->region->used_pages();
  size_t resident = 0;
  for (size_t i = 0; i < used; ++i) {
    resident += PageTable::Load(heap_->table->at(i)).state == PageState::kResident;
  }
  stats.resident_pages.store(resident, std::memory_order_relaxed);
  stats.heap_pages.store(used, std::memory_order_relaxed);
  stats.pool_total_size.store(heap_->pool->TotalSize(),
                              std::memory_order_relaxed);
}

}  // namespace coldheap::shim
