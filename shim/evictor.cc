#include "shim/evictor.h"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "policy/refault_memory.h"
#include "shim/evicted_copy.h"
#include "shim/fault_handler.h"
#include "shim/log.h"
#include "shim/os.h"
#include "shim/thread.h"

#include <new>

namespace coldheap::shim {
namespace {

constexpr uint8_t kMaxAge = 255;
constexpr uint8_t kMaxBackoffScans = 64;

policy::PolicySettings SettingsFrom(const Config& c) {
  policy::PolicySettings s;
  s.scan_interval_ms = c.scan_interval_ms;
  s.cold_age_ms = c.cold_age_ms;
  s.promotion_rate_ppm_per_minute = c.promotion_rate_ppm_per_minute;
  s.target_bytes = c.target_kind == TargetKind::kBytes ? c.target_bytes : 0;
  s.target_heap_percent =
      c.target_kind == TargetKind::kHeapPercent ? c.target_heap_percent : 0;
  s.max_pool_percent = c.max_pool_percent;
  s.accept_threshold_percent = c.accept_threshold_percent;
  s.cpu_budget_ppm = c.cpu_budget_ppm;
  return s;
}

// The word every 8 bytes of the page repeats, if it is same-filled.
bool SameFilled(const unsigned char* page, uint64_t* value) {
  const auto* words = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 1; i < kPageSize / sizeof(uint64_t); ++i) {
    if (words[i] != words[0]) return false;
  }
  *value = words[0];
  return true;
}

// Taken out of the region, with its bytes kept somewhere.
bool IsOut(PageState s) {
  return s == PageState::kStaged || s == PageState::kCompressed ||
         s == PageState::kSameFilled || s == PageState::kWrittenBack;
}

void SleepMs(uint64_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000),
              static_cast<long>((ms % 1000) * 1'000'000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

bool Evictor::Start(Heap& heap, int pagemap_fd) {
  if (!compressor_.Init(heap.config->compressor, heap.dense != nullptr)) return false;
  if (heap.dense != nullptr && !recompressor_.Init(heap, &batch_mu_)) return false;
  policy_ = policy::ReclaimPolicy(SettingsFrom(*heap.config));
  start_ms_ = os::MonotonicNowNs() / 1'000'000;
  return RestartInChild(heap, pagemap_fd);
}

bool Evictor::RestartInChild(Heap& heap, int pagemap_fd) {
  heap_ = &heap;
  pagemap_fd_ = pagemap_fd;
  new (&batch_mu_) std::mutex();  // the parent's holder does not exist here
  exiting_.store(false);
  answered_round_ = 0;  // the child's relay starts again (thread.h)
  if (!PrepareLiveStatsPath(live_stats_path_, sizeof(live_stats_path_))) {
    live_stats_path_[0] = '\0';
  }
  return StartShimThread(&thread_, &ThreadMain, this);
}

void* Evictor::ThreadMain(void* arg) {
  auto* self = static_cast<Evictor*>(arg);
  for (;;) {
    ShimCredentialRelay().SleepAnswering(self->heap_->config->scan_interval_ms,
                                         &self->answered_round_);
    self->Pass();
  }
  return nullptr;
}

void Evictor::Pass() {
  uint64_t cpu_start = os::ThreadCpuTimeNs();
  ++scan_;
  {
    std::lock_guard<std::mutex> lock(batch_mu_);
    ScanWrites();
  }
  if (heap_->handlers != nullptr) {
    std::lock_guard<std::mutex> lock(batch_mu_);
    heap_->handlers->DrainDeferredFrees(*heap_->pool);
  }
  policy::ScanReport report = BuildReport();
  size_t processed = heap_->config->evict_all_at_ms != 0 ? EvictAllOnce(report)
                                                         : Reclaim(report);
  uint64_t dense_cpu =
      heap_->dense != nullptr ? Densify(os::ThreadCpuTimeNs() - cpu_start) : 0;
  RefreshGauges();
  last_processed_ = processed;
  uint64_t cpu = os::ThreadCpuTimeNs() - cpu_start;
  // The policy prices a page taken out by this; the dense tier pays its own.
  last_cpu_ns_ = cpu - dense_cpu;
  Stats& stats = *heap_->stats;
  stats.evictor_cpu_ns.fetch_add(cpu, std::memory_order_relaxed);
  WriteStatsFiles();
}

// The dense tier works on credit. Each pass adds the budget for the time
// since the last one, less what this pass's eviction and the refaults since
// the last pass cost (policy::DenseAllowanceNs: eviction first, but a
// quarter when refaults eat the budget). The policy sees the tier's CPU
// (ScanReport::dense_cost_ns_total) and gives eviction what is left, so
// the two stay within the budget together. A
// training (~0.5 s) is a debt paid back from half of each allowance, so
// recompression does not stop for minutes after one. Credit and the
// shortfall that eviction leaves are capped at a second of CPU. The stress
// mode (COLDHEAP_COLD_AGE=0) has no budget here either.
uint64_t Evictor::Densify(uint64_t evict_cpu_ns) {
  constexpr int64_t kMaxCreditNs = 1'000'000'000;
  const Config& config = *heap_->config;
  Stats& stats = *heap_->stats;
  uint64_t now = os::MonotonicNowNs();
  uint64_t wall = last_pass_ns_ != 0 ? now - last_pass_ns_
                                     : config.scan_interval_ms * 1'000'000;
  last_pass_ns_ = now;
  uint64_t refault_cost = stats.refault_cost_ns.load(std::memory_order_relaxed);
  uint64_t refaults = refault_cost >= last_refault_cost_ns_
                          ? refault_cost - last_refault_cost_ns_
                          : 0;
  last_refault_cost_ns_ = refault_cost;
  auto budget = static_cast<int64_t>(wall / 1'000'000 * config.cpu_budget_ppm);
  int64_t allowance =
      policy::DenseAllowanceNs(budget, static_cast<int64_t>(evict_cpu_ns),
                               static_cast<int64_t>(refaults));
  int64_t repay = std::min(dense_debt_ns_, std::max<int64_t>(allowance / 2, 0));
  dense_debt_ns_ -= repay;
  dense_credit_ns_ = std::clamp(dense_credit_ns_ + allowance - repay,
                                -kMaxCreditNs, kMaxCreditNs);
  bool stress = config.cold_age_ms == 0;
  if (!stress && dense_credit_ns_ <= 0) return 0;
  uint64_t trained = stats.dense_train_cpu_ns.load(std::memory_order_relaxed);
  uint64_t used = recompressor_.Run(DenseAgeTicks(), stress ? -1 : dense_credit_ns_);
  auto training = static_cast<int64_t>(
      stats.dense_train_cpu_ns.load(std::memory_order_relaxed) - trained);
  dense_debt_ns_ += training;
  dense_credit_ns_ -= static_cast<int64_t>(used) - training;
  stats.dense_cpu_ns.fetch_add(used, std::memory_order_relaxed);
  return used;
}

// COLDHEAP_DENSE_AGE in ticks out of the pool (a page at a raised refault
// level ticks slower, and so waits longer); auto is 4 cold thresholds.
uint8_t Evictor::DenseAgeTicks() const {
  const Config& config = *heap_->config;
  uint64_t ticks =
      config.dense_age_auto
          ? 4 * heap_->stats->cold_age_scans.load(std::memory_order_relaxed)
          : (config.dense_age_ms + config.scan_interval_ms - 1) /
                config.scan_interval_ms;
  return ticks > kMaxAge ? kMaxAge : static_cast<uint8_t>(ticks);
}

// What refaults have cost since start: the faulting threads' stall, plus
// the handlers' CPU (read from their thread clocks once per scan, also for
// the statistics) in the share of this scan's fault events that were
// refaults. The handlers' service time is no measure of their CPU: on a
// busy machine it includes the time they waited for one.
uint64_t Evictor::RefaultCostNs() {
  Stats& stats = *heap_->stats;
  uint64_t cpu = heap_->handlers != nullptr ? heap_->handlers->CpuTimeNs() : 0;
  stats.handler_cpu_ns.store(cpu, std::memory_order_relaxed);
  uint64_t events = 0;
  for (const Counter& bucket : stats.fault_latency_us) {
    events += bucket.load(std::memory_order_relaxed);
  }
  uint64_t refaults = stats.refaults.load(std::memory_order_relaxed) +
                      stats.staged_refaults.load(std::memory_order_relaxed);
  // A forked child's handlers are new threads: their clocks start again.
  if (cpu >= last_handler_cpu_ns_ && events > last_fault_events_) {
    uint64_t all = events - last_fault_events_;
    uint64_t mistaken = std::min(refaults - last_refault_events_, all);
    refault_cpu_ns_ += (cpu - last_handler_cpu_ns_) * mistaken / all;
  }
  last_handler_cpu_ns_ = cpu;
  last_fault_events_ = events;
  last_refault_events_ = refaults;
  uint64_t total =
      refault_cpu_ns_ + stats.refault_stall_ns.load(std::memory_order_relaxed);
  stats.refault_cost_ns.store(total, std::memory_order_relaxed);
  return total;
}

// What the policy decides for this scan, carried out; returns the pages
// taken out. Each costs two passes' work (moved out now, compressed at the
// next), but counting it once, against all of a pass's CPU, is what makes
// the policy's cost per page the whole cost of a page at steady state,
// fixed scan costs included.
size_t Evictor::Reclaim(const policy::ScanReport& report) {
  policy::Decision decision = policy_.Decide(report);
  bool stress = decision.cold_age_scans == 0;
  // Stress mode is "every resident page, every scan": no pool limit.
  bool pool_full = decision.pool_full && !stress;
  pool_limit_bytes_ = stress ? ~uint64_t{0}
                             : report.heap_pages * kPageSize *
                                   heap_->config->max_pool_percent / 100;
  pool_limit_tripped_ = pool_full;
  writeback_stalled_ = false;
  if (pool_full && heap_->writeback != nullptr) {
    std::lock_guard<std::mutex> lock(batch_mu_);
    pool_full = !WriteBack();
  }
  CompressProbation(pool_full);
  size_t taken = 0;
  if (stress) {
    taken = EvictNow(0);
  } else if (!pool_full) {
    taken = Probe(decision);
  }
  Publish(decision);
  return taken;
}

// COLDHEAP_EVICT_ALL_AT (the oracle run): nothing until that time, then
// every resident page compressed at once, then nothing ever again.
size_t Evictor::EvictAllOnce(const policy::ScanReport& report) {
  if (evicted_all_) return 0;
  if (report.now_ms < start_ms_ + heap_->config->evict_all_at_ms) return 0;
  evicted_all_ = true;
  pool_limit_bytes_ = ~uint64_t{0};
  return EvictNow(0);
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

// Pages that are out age too (ticks since they were taken out, for the
// refault judgement); each page ages at its own level's pace. A handler
// that restores a page between our loads and our store loses its reset of
// the age to our increment: the page then looks older than it is, once,
// which costs at most an early eviction; a compare-and-swap per page per
// scan would cost more than that.
void Evictor::AgeRange(size_t from, size_t to, bool written) {
  for (size_t i = from; i < to; ++i) {
    PageEntry& e = heap_->table->at(i);
    PageState state = PageTable::Load(e).state;
    if (state == PageState::kResident && written) {
      e.age.store(0, std::memory_order_relaxed);
      continue;
    }
    if (!IsOut(state) && state != PageState::kResident) continue;
    uint8_t age = e.age.load(std::memory_order_relaxed);
    if (age < kMaxAge &&
        policy::AgesAtScan(e.refault_level.load(std::memory_order_relaxed), scan_)) {
      e.age.store(age + 1, std::memory_order_relaxed);
    }
  }
}

// One walk over the page table: the age histogram of resident pages, the
// page counts, and the clean-up of purged compressed copies.
policy::ScanReport Evictor::BuildReport() {
  policy::ScanReport r;
  size_t used = heap_->region->used_pages();
  uint64_t evicted = 0;
  uint64_t staged = 0;
  uint64_t raised = 0;
  for (size_t i = 0; i < used; ++i) {
    PageEntry& e = heap_->table->at(i);
    PageState state = PageTable::Load(e).state;
    if ((state == PageState::kResident || IsOut(state)) &&
        e.refault_level.load(std::memory_order_relaxed) > 0) {
      ++raised;
    }
    switch (state) {
      case PageState::kResident:
        ++r.age_histogram[e.age.load(std::memory_order_relaxed)];
        ++r.resident_pages;
        break;
      case PageState::kStaged:
        ++staged;
        break;
      case PageState::kCompressed:
      case PageState::kSameFilled:
        ++evicted;
        break;
      case PageState::kWrittenBack:
        ++evicted;
        break;
      case PageState::kDiscarded:
      case PageState::kDiscardedSlot:
        FreeDiscarded(i);
        break;
      default:
        break;
    }
  }
  Stats& stats = *heap_->stats;
  stats.resident_pages.store(r.resident_pages, std::memory_order_relaxed);
  stats.probation_pages.store(staged, std::memory_order_relaxed);
  stats.raised_threshold_pages.store(raised, std::memory_order_relaxed);
  // Pages on probation still hold their memory, in the staging area.
  r.resident_pages += staged;
  r.probation_pages = staged;
  r.evicted_pages = evicted;
  r.heap_pages = r.resident_pages + evicted;
  stats.heap_pages.store(r.heap_pages, std::memory_order_relaxed);
  r.now_ms = os::MonotonicNowNs() / 1'000'000;
  r.pool_total_size = heap_->pool->TotalSize();
  r.refaults_total = stats.refaults.load(std::memory_order_relaxed);
  r.refault_cost_ns_total = RefaultCostNs();
  r.dense_cost_ns_total = stats.dense_cpu_ns.load(std::memory_order_relaxed);
  r.unlearned_refaults_total =
      stats.unlearned_refaults.load(std::memory_order_relaxed);
  r.pages_processed = last_processed_;
  r.cpu_ns = last_cpu_ns_;
  for (int age = 0; age < policy::kAgeBuckets; ++age) {
    int bucket = 0;
    while (bucket < kAgeHistogramBuckets - 1 && (1 << bucket) <= age) ++bucket;
    stats.age_histogram[bucket].store(0, std::memory_order_relaxed);
  }
  for (int age = 0; age < policy::kAgeBuckets; ++age) {
    int bucket = 0;
    while (bucket < kAgeHistogramBuckets - 1 && (1 << bucket) <= age) ++bucket;
    stats.age_histogram[bucket].fetch_add(r.age_histogram[age],
                                          std::memory_order_relaxed);
  }
  return r;
}

void Evictor::Publish(const policy::Decision& d) {
  Stats& stats = *heap_->stats;
  stats.cold_age_scans.store(d.cold_age_scans, std::memory_order_relaxed);
  stats.reclaim_min_age_scans.store(d.min_age_scans, std::memory_order_relaxed);
  stats.promotions_per_minute.store(d.promotions_per_minute,
                                    std::memory_order_relaxed);
  stats.refault_cost_ppm.store(d.refault_cost_ppm, std::memory_order_relaxed);
  stats.pool_full.store(d.pool_full, std::memory_order_relaxed);
  stats.pool_limit_hit.store(policy_.pool_limit_hits() + in_scan_limit_hits_,
                             std::memory_order_relaxed);
  stats.target_unreachable.store(d.target_unreachable, std::memory_order_relaxed);
  stats.target_unreachable_events.store(policy_.target_unreachable_events(),
                                        std::memory_order_relaxed);
}

bool Evictor::IsCandidate(PageEntry& e, uint32_t min_age) {
  if (PageTable::Load(e).state != PageState::kResident) return false;
  if (e.skip_scans > 0) {
    --e.skip_scans;
    return false;
  }
  return e.age.load(std::memory_order_relaxed) >= min_age;
}

// Fills slot_page_[0, n) with up to `max_pages` candidates found from page
// `from` on, in address order; `*next` is where the walk stopped.
size_t Evictor::Collect(size_t from, uint32_t min_age, size_t max_pages,
                        size_t* next) {
  size_t used = heap_->region->used_pages();
  if (max_pages > Staging::kSlots) max_pages = Staging::kSlots;
  size_t n = 0;
  size_t i = from;
  for (; i < used && n < max_pages; ++i) {
    if (IsCandidate(heap_->table->at(i), min_age)) slot_page_[n++] = i;
  }
  *next = i;
  return n;
}

// Stress mode: every candidate is compressed now, a batch at a time.
size_t Evictor::EvictNow(uint32_t min_age) {
  size_t done = 0;
  size_t from = 0;
  size_t used = heap_->region->used_pages();
  while (from < used) {
    size_t n = Collect(from, min_age, kBatchPages, &from);
    if (n == 0) break;
    std::lock_guard<std::mutex> lock(batch_mu_);
    MoveOutRange(0, n);
    for (size_t k = 0; k < n; ++k) {
      if (slot_staged_[k]) CompressStaged(k, /*pool_full=*/false);
    }
    WaitForStolenSlots(0, n);
    (void)os::DontNeed(heap_->staging.Slot(0), n * kPageSize);
    done += n;
  }
  return done;
}

// Puts up to the policy's budget of cold pages on probation, continuing
// from where the last scan stopped so that every page gets its turn.
size_t Evictor::Probe(const policy::Decision& d) {
  size_t n = Collect(cursor_, d.min_age_scans, d.max_pages, &cursor_);
  if (cursor_ >= heap_->region->used_pages()) cursor_ = 0;
  for (size_t first = 0; first < n; first += kBatchPages) {
    std::lock_guard<std::mutex> lock(batch_mu_);
    MoveOutRange(first, n - first < kBatchPages ? n - first : kBatchPages);
  }
  probation_ = n;
  return n;
}

// The pages put on probation a scan ago and not touched since are
// compressed now; their slots are emptied for the next probation.
void Evictor::CompressProbation(bool pool_full) {
  for (size_t first = 0; first < probation_; first += kBatchPages) {
    size_t n = probation_ - first < kBatchPages ? probation_ - first : kBatchPages;
    std::lock_guard<std::mutex> lock(batch_mu_);
    for (size_t k = first; k < first + n; ++k) {
      if (slot_staged_[k]) CompressStaged(k, pool_full);
    }
    WaitForStolenSlots(first, n);
    (void)os::DontNeed(heap_->staging.Slot(first), n * kPageSize);
  }
  probation_ = 0;
}

// Moves out slot_page_[first, first + count) into the same slots, one
// UFFDIO_MOVE per run of consecutive region pages.
void Evictor::MoveOutRange(size_t first, size_t count) {
  size_t end = first + count;
  while (first < end) {
    size_t run = 1;
    while (first + run < end &&
           slot_page_[first + run] == slot_page_[first] + run) {
      ++run;
    }
    MoveOut(first, run);
    first += run;
  }
}

// Claims and moves out the run slot_page_[first, first + run), slot k taking
// slot_page_[k], and marks in slot_staged_ which pages made it. A page that
// cannot move is published back: resident if it is shared copy-on-write
// (EBUSY), untouched if it was a hole (the program dropped it: it reads zeros).
void Evictor::MoveOut(size_t first, size_t run) {
  for (size_t k = first; k < first + run; ++k) slot_staged_[k] = false;
  size_t claimed = 0;
  while (claimed < run) {
    PageEntry& e = heap_->table->at(slot_page_[first + claimed]);
    e.payload = first + claimed;  // the slot, for a fault that steals it
    if (!PageTable::Transition(e, PageState::kResident, PageState::kClaimed)) {
      break;
    }
    ++claimed;
  }
  size_t done = 0;  // pages of the claimed run settled so far
  while (done < claimed) {
    size_t k = first + done;
    os::OsResult<size_t> r = os::Move(heap_->uffd, heap_->staging.Slot(k),
                                      heap_->region->PageAddress(slot_page_[k]),
                                      (claimed - done) * kPageSize);
    size_t moved = r.value / kPageSize;
    for (size_t m = 0; m < moved; ++m) {
      slot_staged_[k + m] = true;
      PageEntry& e = heap_->table->at(slot_page_[k + m]);
      e.age.store(0, std::memory_order_relaxed);  // now: time out
      PageTable::Publish(e, PageState::kStaged);
    }
    done += moved;
    if (r.ok() || (r.error == EAGAIN && moved > 0)) continue;
    if (done == claimed) break;
    // The page at `done` did not move: settle it and carry on after it.
    size_t k_failed = first + done;
    PageEntry& failed = heap_->table->at(slot_page_[k_failed]);
    PageTable::Publish(failed, r.error == ENOENT ? PageState::kUntouched
                                                 : PageState::kResident);
    if (r.error == EBUSY) MoveAfterUnsharing(k_failed);
    ++done;
  }
}

// The limit holds within a scan too, to the object: the policy decides at
// scan granularity, and one scan may store thousands of pages. A hit is
// counted once per crossing; with writeback, the pool makes room instead.
bool Evictor::PoolHasRoom() {
  if (heap_->pool->TotalSize() < pool_limit_bytes_) return true;
  if (!pool_limit_tripped_) {
    pool_limit_tripped_ = true;
    ++in_scan_limit_hits_;
  }
  if (heap_->writeback != nullptr && WriteBack()) {
    pool_limit_tripped_ = false;
    return true;
  }
  return false;
}

// The pool is at its limit: write its least recently stored objects to the
// writeback file until it is under the accept threshold. True if it got
// there (the evictor may store again). Called with batch_mu_ held.
bool Evictor::WriteBack() {
  uint64_t goal = pool_limit_bytes_ / 100 * heap_->config->accept_threshold_percent;
  uint64_t total = heap_->pool->TotalSize();
  if (total <= goal) return true;
  if (writeback_stalled_) return false;
  // A page at a time, so a handler freeing a handle waits one step at most.
  for (uint64_t pages = (total - goal + kPageSize - 1) / kPageSize; pages > 0;) {
    std::lock_guard<std::mutex> shrinking(heap_->writeback->shrink_mu);
    uint64_t failures = os::FailureCount();
    absl::StatusOr<size_t> freed = heap_->pool->Shrink(1);
    if (!freed.ok() || *freed == 0) {
      // Nothing freed because the file refused (ENOSPC, EIO): stop for this
      // scan. Otherwise (objects busy) the next page may try again.
      writeback_stalled_ = os::FailureCount() != failures;
      break;
    }
    pages = *freed >= pages ? 0 : pages - *freed;
  }
  return heap_->pool->TotalSize() <= goal;
}

bool WriteBackObject(void* context, pool::Zpool& pool, pool::Handle handle) {
  Heap& heap = *static_cast<Heap*>(context);
  pool::MappedObject object(pool, handle, pool::MapMode::kReadOnly);
  ObjectHeader index;
  memcpy(&index, object.data(), sizeof(index));
  if (index >= heap.table->pages()) return false;
  PageEntry& e = heap.table->at(index);
  uint32_t word = PageTable::LoadWord(e);
  PageWord w = PageWord::Unpack(word);
  if (w.state != PageState::kCompressed || e.payload != handle) return false;
  if (!PageTable::Claim(e, word, PageState::kClaimed)) return false;
  uint64_t slot = heap.writeback->Allocate();
  if (slot == WritebackFile::kNoSlot ||
      !heap.writeback->Write(
          slot, static_cast<char*>(object.data()) + sizeof(ObjectHeader), w.size)) {
    if (slot != WritebackFile::kNoSlot) heap.writeback->Release(slot);
    e.word.store(word, std::memory_order_release);  // still compressed
    return false;
  }
  e.payload = slot;
  PageTable::Publish(e, PageState::kWrittenBack, w.size, w.codec);
  if (w.codec != 0) {  // the dense tier counts what its pool holds
    heap.stats->dense_pages.fetch_sub(1, std::memory_order_relaxed);
    heap.stats->dense_bytes.fetch_sub(w.size, std::memory_order_relaxed);
    heap.stats->dense_written_back_pages.fetch_add(1, std::memory_order_relaxed);
  }
  Stats& stats = *heap.stats;
  stats.stored_pages.fetch_sub(1, std::memory_order_relaxed);
  stats.compressed_bytes.fetch_sub(w.size, std::memory_order_relaxed);
  stats.written_back_pages.fetch_add(1, std::memory_order_relaxed);
  stats.file_pages.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// UFFDIO_MOVE refuses a page that is, or was since its last write, shared
// copy-on-write with a forked child, even after the child is gone. A write
// makes it the parent's own again (copying it only if a child still holds
// it); an atomic add of 0 is a write that cannot lose a concurrent store of
// the program. The page is touched while resident and unclaimed, so that if
// the program dropped it meanwhile, the fault is served without waiting on us.
void Evictor::MoveAfterUnsharing(size_t slot) {
  PageEntry& e = heap_->table->at(slot_page_[slot]);
  auto* word = reinterpret_cast<uint64_t*>(heap_->region->PageAddress(slot_page_[slot]));
  __atomic_fetch_add(word, 0, __ATOMIC_RELAXED);
  e.payload = slot;
  if (!PageTable::Transition(e, PageState::kResident, PageState::kClaimed)) return;
  os::OsResult<size_t> r = os::Move(heap_->uffd, heap_->staging.Slot(slot),
                                    word, kPageSize);
  if (r.value == kPageSize) {
    slot_staged_[slot] = true;
    e.age.store(0, std::memory_order_relaxed);
    PageTable::Publish(e, PageState::kStaged);
    heap_->stats->cow_unshared.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  heap_->stats->reject_busy.fetch_add(1, std::memory_order_relaxed);
  PageTable::Publish(e, PageState::kResident);
}

// Turns the staged page in `slot` into its evicted form. The entry is
// re-claimed first: if a fault got there before us (kRestoring or later),
// the page went back from the slot and our work is dropped.
void Evictor::CompressStaged(size_t slot, bool pool_full) {
  PageEntry& e = heap_->table->at(slot_page_[slot]);
  const auto* page = reinterpret_cast<unsigned char*>(heap_->staging.Slot(slot));
  Stats& stats = *heap_->stats;
  uint64_t fill;
  if (SameFilled(page, &fill)) {  // costs no pool memory: always taken
    if (!PageTable::Transition(e, PageState::kStaged, PageState::kClaimed)) return;
    e.payload = fill;
    PageTable::Publish(e, PageState::kSameFilled);
    stats.same_filled_pages.fetch_add(1, std::memory_order_relaxed);
    stats.evicted_pages.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (pool_full || !PoolHasRoom()) return MoveBack(slot, e);
  size_t size = compressor_.Compress(page, out_, kMaxCompressedSize);
  if (size == 0) {
    stats.reject_compress_poor.fetch_add(1, std::memory_order_relaxed);
    return MoveBack(slot, e);
  }
  absl::StatusOr<pool::Handle> handle =
      heap_->pool->Malloc(sizeof(ObjectHeader) + size);
  if (!handle.ok()) return MoveBack(slot, e);
  {
    pool::MappedObject object(*heap_->pool, *handle, pool::MapMode::kWriteOnly);
    auto header = static_cast<ObjectHeader>(slot_page_[slot]);
    memcpy(object.data(), &header, sizeof(header));
    memcpy(static_cast<char*>(object.data()) + sizeof(header), out_, size);
  }
  if (!PageTable::Transition(e, PageState::kStaged, PageState::kClaimed)) {
    FreeHandle(*heap_, *handle);
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
void Evictor::MoveBack(size_t slot, PageEntry& e) {
  if (!PageTable::Transition(e, PageState::kStaged, PageState::kClaimed)) return;
  char* dst = heap_->region->PageAddress(slot_page_[slot]);
  // The slot holds the only copy: the page must go back before it is
  // published resident. ENOMEM is the kernel short of a page for a moment:
  // back off and retry. ESRCH: the process is exiting, nothing reads it.
  for (int tries = 0;; ++tries) {
    os::OsResult<size_t> r =
        os::Copy(heap_->uffd, dst, heap_->staging.Slot(slot), kPageSize);
    if (r.ok() || r.error == ESRCH) break;
    if (tries >= 8) SleepMs(1);
  }
  uint8_t tries = e.poor_compressions < 6 ? e.poor_compressions + 1 : 6;
  e.poor_compressions = tries;
  e.skip_scans = static_cast<uint8_t>(1u << tries) > kMaxBackoffScans
                     ? kMaxBackoffScans
                     : static_cast<uint8_t>(1u << tries);
  PageTable::Publish(e, PageState::kResident);
}

// A fault that stole a staged page copies it out of its slot; the slots can
// be emptied only once every such copy is done.
void Evictor::WaitForStolenSlots(size_t first, size_t count) {
  for (size_t k = first; k < first + count; ++k) {
    if (!slot_staged_[k]) continue;
    const PageEntry& e = heap_->table->at(slot_page_[k]);
    for (int spins = 0;
         PageTable::Load(e).state == PageState::kRestoring; ++spins) {
      if (spins > 1000) sched_yield();
    }
  }
}

void Evictor::FreeDiscarded(size_t index) {
  std::lock_guard<std::mutex> lock(batch_mu_);  // pool use: see Pause()
  PageEntry& e = heap_->table->at(index);
  uint32_t word = PageTable::LoadWord(e);
  PageState state = PageWord::Unpack(word).state;
  if (state != PageState::kDiscarded && state != PageState::kDiscardedSlot) return;
  if (!PageTable::Claim(e, word, PageState::kClaimed)) return;
  FreeDiscardedPayload(*heap_, state, e.payload);
  PageTable::Publish(e, PageState::kUntouched);
  heap_->stats->discarded_pages.fetch_add(1, std::memory_order_relaxed);
}

size_t Evictor::RestoreAllInPlace() {
  size_t restored = RestoreInPlaceIf(
      [](PageState s) { return s != PageState::kResident; });
  (void)os::DontNeed(heap_->staging.base, Staging::kSlots * kPageSize);
  return restored;
}

size_t Evictor::RestoreFileInPlace() {
  return RestoreInPlaceIf([](PageState s) {
    return s == PageState::kWrittenBack || s == PageState::kDiscardedSlot;
  });
}

size_t Evictor::RestoreInPlaceIf(bool (*which)(PageState)) {
  size_t used = heap_->region->used_pages();
  size_t restored = 0;
  for (size_t i = 0; i < used; ++i) {
    PageEntry& e = heap_->table->at(i);
    PageWord was = PageTable::Load(e);
    if (!which(was.state)) continue;
    if (was.state == PageState::kDiscarded || was.state == PageState::kDiscardedSlot) {
      FreeDiscardedPayload(*heap_, was.state, e.payload);
      PageTable::Publish(e, PageState::kUntouched);
    } else if (RestoreInPlace(e, was, heap_->region->PageAddress(i))) {
      e.age.store(0, std::memory_order_relaxed);
      PageTable::Publish(e, PageState::kResident);
      ++restored;
    }
  }
  return restored;
}

// Writes the bytes of an evicted page to `page` and gives back its evicted
// copy; false if the page was not evicted.
bool Evictor::RestoreInPlace(PageEntry& e, PageWord was, char* page) {
  switch (was.state) {
    case PageState::kStaged:
      memcpy(page, heap_->staging.Slot(e.payload), kPageSize);
      return true;
    case PageState::kSameFilled:
    case PageState::kCompressed:
    case PageState::kWrittenBack:
      ReadEvictedCopy(*heap_, compressor_, e, was, page, reinterpret_cast<char*>(out_));
      DropEvictedCopy(*heap_, e, was, /*deferred=*/nullptr);
      return true;
    default:
      return false;
  }
}

void Evictor::RefreshGauges() {
  std::lock_guard<std::mutex> lock(batch_mu_);
  RefreshPoolGauges();
  heap_->stats->scans.fetch_add(1, std::memory_order_relaxed);
}

// Also compacts the pool: cheap when there is nothing to move, and without
// it churn leaves zspages sparsely used (zsmalloc packs at ~1.10 instead of
// ~1.04 after sustained store/free). Called with batch_mu_ held.
void Evictor::RefreshPoolGauges() {
  heap_->pool->Compact();
  uint64_t total = heap_->pool->TotalSize();
  Stats& stats = *heap_->stats;
  stats.pool_total_size.store(total, std::memory_order_relaxed);
  if (total > stats.pool_peak_size.load(std::memory_order_relaxed)) {
    stats.pool_peak_size.store(total, std::memory_order_relaxed);
  }
}

const char* Evictor::StopWritingStats() {
  exiting_.store(true);
  std::lock_guard<std::mutex> lock(batch_mu_);  // a write in progress ends
  if (heap_ != nullptr) {
    if (heap_->handlers != nullptr) heap_->handlers->DrainDeferredFrees(*heap_->pool);
    RefreshPoolGauges();
  }
  return live_stats_path_;
}

void Evictor::WriteStatsFiles() {
  std::lock_guard<std::mutex> lock(batch_mu_);
  if (exiting_.load()) return;
  WriteConfiguredStats(*heap_->stats, *heap_->config);
  if (live_stats_path_[0] != '\0') {
    WriteStatsFile(*heap_->stats, live_stats_path_);
  }
}

}  // namespace coldheap::shim
