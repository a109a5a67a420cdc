// The reclaim policy: pure decisions, no syscalls, driven by plain numbers so
// that tests can replay traces with a fake clock. The shim's evictor feeds it
// one ScanReport per scan and carries out the Decision it returns.
//
// What it decides, and why:
//  - The cold threshold (in ticks: scans for a page at refault level 0, see
//    refault_memory.h for the per-page levels that stretch it). A page is a
//    candidate once it has not been written nor restored for that many
//    ticks. The threshold is the global guard behind the per-page memory: it
//    adapts to a promotion-rate objective, as in Google's far-memory fleet:
//    refaults of compressed pages per minute should stay at or below
//    COLDHEAP_PROMOTION_RATE of the resident working set. It counts only
//    the refaults the per-page memory cannot learn from (pages that came
//    back late, or were already at the top level): the others raise their
//    page's threshold, and during that learning their rate is no sign that
//    the global threshold is wrong (raising it then only made the threshold
//    swing between the floor and the cap on a stationary trace). The rate is a
//    moving average updated every scan (time constant 2 minutes), and the
//    threshold moves every scan by a small step, in proportion to the time
//    the scan covers: up at a pace that doubles it in 3 minutes while the
//    rate is above the objective, down at one that halves it in 6 minutes
//    (to the COLDHEAP_COLD_AGE floor) while it is under a quarter of it, and
//    it holds in between. Small steps on a smoothed rate, with a dead band,
//    converge on a steady workload; the minute-long doubling and halving
//    this replaced swung the threshold up and down on the same workload.
//  - Budget mode (COLDHEAP_TARGET): when resident heap + pool exceeds the
//    target, reclaim coldest-first, down to pages one scan old, enough pages
//    to get back under it; when even that cannot reach the target (all that
//    is cold is already compressed), say so once.
//  - The pool limit (COLDHEAP_MAX_POOL_PERCENT of the heap): once the pool
//    reaches it, store nothing until it falls below
//    COLDHEAP_ACCEPT_THRESHOLD_PERCENT of the limit (zswap's hysteresis), so
//    it does not flap.
//  - The CPU budget (COLDHEAP_CPU_BUDGET of one core) covers all of
//    coldheap's work: the evictor's, and the cost of its mistakes, the
//    refaults (the handlers' CPU to serve them plus the time the faulting
//    threads stood still; the shim reports both as refault_cost_ns). The
//    smoothed cost of refaults is taken off the budget first, then that of
//    the dense tier's recompression (DenseAllowanceNs below); what is left
//    caps the pages the evictor may process per scan, at its measured cost
//    per page. When mistakes alone use up the budget, nothing new is taken
//    out until they subside (unless the footprint is over COLDHEAP_TARGET:
//    then memory comes first). Stress mode (cold age 0) is exempt: it means
//    "every resident page, every scan".
#ifndef COLDHEAP_POLICY_RECLAIM_POLICY_H_
#define COLDHEAP_POLICY_RECLAIM_POLICY_H_

#include <cstdint>

namespace coldheap::policy {

inline constexpr int kAgeBuckets = 256;  // ages in scans, saturating at 255

struct PolicySettings {
  uint64_t scan_interval_ms = 1000;
  uint64_t cold_age_ms = 30'000;                 // the floor of the threshold
  uint32_t promotion_rate_ppm_per_minute = 2000;  // of resident pages
  uint64_t target_bytes = 0;                      // 0: no budget
  uint32_t target_heap_percent = 0;               // used when target_bytes == 0
  uint32_t max_pool_percent = 50;
  uint32_t accept_threshold_percent = 90;
  uint32_t cpu_budget_ppm = 20'000;               // of one core
};

// What one scan saw.
struct ScanReport {
  uint64_t now_ms = 0;
  // Resident pages by age in scans (age_histogram[255] holds 255 and up).
  uint64_t age_histogram[kAgeBuckets] = {};
  uint64_t heap_pages = 0;      // pages jemalloc has of the region
  uint64_t resident_pages = 0;  // of those, mapped (incl. on probation)
  // Of those, already moved out and to be compressed at this scan: their
  // saving is on its way and must not be asked for twice.
  uint64_t probation_pages = 0;
  uint64_t evicted_pages = 0;   // compressed or same-filled now
  uint64_t pool_total_size = 0;
  uint64_t refaults_total = 0;  // compressed pages faulted back, since start
  // Of those, the ones no page's refault level rose for (see above).
  uint64_t unlearned_refaults_total = 0;
  // What refaults (from the pool and from probation) cost, since start:
  // handler CPU plus the faulting threads' stall, in ns.
  uint64_t refault_cost_ns_total = 0;
  // The dense tier's CPU since start (recompression and training): it
  // shares the budget, so eviction gets what the two leave.
  uint64_t dense_cost_ns_total = 0;
  // Background work of the previous scan: pages taken out (put on probation)
  // and all the CPU the scan spent, so that cpu_ns / pages_processed is
  // the whole cost of a page (its compression at the next scan and the
  // scan's fixed work included) at steady state.
  uint64_t pages_processed = 0;
  uint64_t cpu_ns = 0;
};

struct Decision {
  // Reclaim resident pages at least this old (in scans)...
  uint32_t min_age_scans = 0;
  // ...but at most this many this scan: the CPU budget, and in budget mode
  // no more than the target needs (plus what is cold anyway).
  uint64_t max_pages = 0;
  bool pool_full = false;           // store nothing this scan
  bool target_unreachable = false;  // budget mode cannot get under target
  uint32_t cold_age_scans = 0;      // the adaptive threshold now
  uint64_t promotions_per_minute = 0;  // smoothed
  uint64_t refault_cost_ppm = 0;       // of one core, smoothed
};

class ReclaimPolicy {
 public:
  explicit ReclaimPolicy(const PolicySettings& settings);

  Decision Decide(const ScanReport& report);

  // Events counted over the policy's life, for the statistics.
  uint64_t pool_limit_hits() const { return pool_limit_hits_; }
  uint64_t target_unreachable_events() const { return unreachable_events_; }

 private:
  uint32_t FloorScans() const;
  double UpdateRates(const ScanReport& report);  // returns ms since the last
  void AdaptThreshold(const ScanReport& report, double dt_ms);
  uint32_t BudgetAge(const ScanReport& report, uint64_t* pages_needed,
                     bool* unreachable) const;
  bool PoolFull(const ScanReport& report);
  uint64_t PageCap(const ScanReport& report, bool count_mistakes);

  PolicySettings settings_;
  uint32_t cold_age_scans_;
  double threshold_;  // cold_age_scans_ before rounding
  bool pool_full_ = false;
  bool unreachable_ = false;
  uint64_t pool_limit_hits_ = 0;
  uint64_t unreachable_events_ = 0;
  // The previous report's clock and totals, for this scan's rates.
  bool seen_report_ = false;
  uint64_t last_now_ms_ = 0;
  uint64_t last_refaults_ = 0;
  uint64_t last_unlearned_ = 0;
  uint64_t last_refault_cost_ns_ = 0;
  uint64_t last_dense_cost_ns_ = 0;
  // Moving averages (kRateSmoothingMs, kCostSmoothingMs): refaults per minute, and the
  // cost of refaults in ns per ms of wall time (which is ppm of a core).
  double promotions_per_minute_ = 0;
  double unlearned_per_minute_ = 0;
  double refault_ns_per_ms_ = 0;
  double dense_ns_per_ms_ = 0;  // kCostSmoothingMs
  // Measured cost of one page of background work (EWMA), in ns.
  uint64_t ns_per_page_ = 0;
};

// The dense tier's share of the budget for one pass, in ns: what the pass's
// eviction and the refaults since the last pass left of `budget_ns`. Taking
// a cold page out frees more per microsecond than recompressing a stored one
// (~2.4 KiB against ~0.7 KiB for ~20 us here), so while eviction needs the
// whole budget the tier waits. But when refaults eat the budget, eviction
// never settles (a cache always refaulting something): then the tier still
// gets up to a quarter, the part eviction left. Negative: eviction and
// refaults went over the budget, a debt for the next passes.
int64_t DenseAllowanceNs(int64_t budget_ns, int64_t evict_ns, int64_t refault_ns);

}  // namespace coldheap::policy

#endif  // COLDHEAP_POLICY_RECLAIM_POLICY_H_
