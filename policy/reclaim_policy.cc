#include "policy/reclaim_policy.h"

#include <algorithm>
#include <limits>

namespace coldheap::policy {
namespace {

constexpr uint32_t kMaxAgeScans = kAgeBuckets - 1;
constexpr uint64_t kMinuteMs = 60'000;
constexpr uint64_t kPageBytes = 4096;
// Cost assumed for a page before any is measured: an LZ4 compression plus
// the move and the pool store, as measured on our machines.
constexpr uint64_t kInitialNsPerPage = 10'000;

}  // namespace

ReclaimPolicy::ReclaimPolicy(const PolicySettings& settings)
    : settings_(settings), cold_age_scans_(FloorScans()) {}

uint32_t ReclaimPolicy::FloorScans() const {
  if (settings_.cold_age_ms == 0) return 0;
  uint64_t interval = std::max<uint64_t>(settings_.scan_interval_ms, 1);
  uint64_t scans = (settings_.cold_age_ms + interval - 1) / interval;
  return static_cast<uint32_t>(std::clamp<uint64_t>(scans, 1, kMaxAgeScans));
}

Decision ReclaimPolicy::Decide(const ScanReport& report) {
  AdaptThreshold(report);
  Decision d;
  d.cold_age_scans = cold_age_scans_;
  d.promotions_per_minute = promotions_per_minute_;
  bool unreachable = false;
  uint64_t needed = 0;
  uint32_t budget_age = BudgetAge(report, &needed, &unreachable);
  d.min_age_scans = std::min(cold_age_scans_, budget_age);
  if (unreachable && !unreachable_) ++unreachable_events_;
  unreachable_ = unreachable;
  d.target_unreachable = unreachable;
  d.pool_full = PoolFull(report);
  d.max_pages = PageCap(report);
  if (budget_age < cold_age_scans_) {
    // Budget pressure reaches below the cold threshold: take what is cold
    // anyway, and of the younger pages only as many as the target needs.
    uint64_t cold = 0;
    for (uint32_t age = cold_age_scans_; age < kAgeBuckets; ++age) {
      cold += report.age_histogram[age];
    }
    d.max_pages = std::min(d.max_pages, cold + needed);
  }
  return d;
}

// Promotions are measured over windows of a minute; the threshold moves once
// per window, by doubling or halving, so one noisy minute cannot swing it far.
void ReclaimPolicy::AdaptThreshold(const ScanReport& report) {
  if (!window_open_) {
    window_open_ = true;
    window_start_ms_ = report.now_ms;
    window_start_refaults_ = report.refaults_total;
    return;
  }
  uint64_t elapsed = report.now_ms - window_start_ms_;
  if (elapsed < kMinuteMs) return;
  uint64_t promotions = report.refaults_total - window_start_refaults_;
  promotions_per_minute_ = promotions * kMinuteMs / elapsed;
  window_start_ms_ = report.now_ms;
  window_start_refaults_ = report.refaults_total;
  uint32_t floor = FloorScans();
  if (floor == 0) return;  // stress mode does not adapt
  uint64_t working_set = std::max<uint64_t>(report.resident_pages, 1);
  uint64_t rate_ppm = promotions_per_minute_ * 1'000'000 / working_set;
  uint64_t objective = settings_.promotion_rate_ppm_per_minute;
  if (rate_ppm > objective) {
    cold_age_scans_ = std::min(cold_age_scans_ * 2, kMaxAgeScans);
  } else if (promotions == 0 || rate_ppm * 4 < objective) {
    // No promotion at all is always far enough below: with an objective of
    // 0 (COLDHEAP_PROMOTION_RATE=0) the threshold must still come back down.
    cold_age_scans_ = std::max(cold_age_scans_ / 2, floor);
  }
}

// The youngest age to reclaim so that resident + pool gets under the target,
// taking the oldest pages first. Each page compressed saves its size less
// what it costs in the pool.
uint32_t ReclaimPolicy::BudgetAge(const ScanReport& report,
                                  uint64_t* pages_needed,
                                  bool* unreachable) const {
  uint64_t heap_bytes = report.heap_pages * kPageBytes;
  uint64_t target = settings_.target_bytes;
  if (target == 0 && settings_.target_heap_percent != 0) {
    target = heap_bytes * settings_.target_heap_percent / 100;
  }
  // What a page costs in the pool: the pool's average so far, or a guess of
  // a third of a page before there is one to go by.
  uint64_t cost = kPageBytes / 3;
  if (report.evicted_pages >= 64) {
    cost = std::min(report.pool_total_size / report.evicted_pages, kPageBytes - 1);
  }
  uint64_t saved_per_page = kPageBytes - cost;
  uint64_t footprint = report.resident_pages * kPageBytes + report.pool_total_size;
  uint64_t coming = report.probation_pages * saved_per_page;
  footprint = footprint > coming ? footprint - coming : 0;
  if (target == 0 || footprint <= target) return kMaxAgeScans;
  *pages_needed = (footprint - target + saved_per_page - 1) / saved_per_page;
  // Before the pool has an average to go by, take half the step: a guess
  // of the compression ratio can be off by 2x either way, and what is
  // compressed cannot be taken back, but the next scan knows the ratio.
  if (report.evicted_pages < 64) {
    *pages_needed = std::max<uint64_t>(*pages_needed / 2, 64);
  }
  uint64_t found = 0;
  for (uint32_t age = kMaxAgeScans; age >= 1; --age) {
    found += report.age_histogram[age];
    if (found >= *pages_needed) return age;
  }
  *unreachable = true;
  return 1;  // everything not written in the last scan
}

bool ReclaimPolicy::PoolFull(const ScanReport& report) {
  uint64_t limit =
      report.heap_pages * kPageBytes * settings_.max_pool_percent / 100;
  if (!pool_full_ && report.pool_total_size >= limit && limit > 0) {
    pool_full_ = true;
    ++pool_limit_hits_;
  } else if (pool_full_ && (report.pool_total_size * 100 <
                                    limit * settings_.accept_threshold_percent ||
                                report.pool_total_size == 0)) {
    // An empty pool always accepts again (zswap's accept threshold of 0%).
    pool_full_ = false;
  }
  return pool_full_;
}

uint64_t ReclaimPolicy::PageCap(const ScanReport& report) {
  if (FloorScans() == 0) return std::numeric_limits<uint64_t>::max();
  if (report.pages_processed >= 64) {
    uint64_t measured = report.cpu_ns / report.pages_processed;
    ns_per_page_ = ns_per_page_ == 0 ? measured : (ns_per_page_ * 3 + measured) / 4;
  }
  uint64_t per_page = ns_per_page_ == 0 ? kInitialNsPerPage : ns_per_page_;
  // ppm of one core over one interval, in ns: interval_ms * 1e6 * ppm / 1e6.
  uint64_t budget_ns = settings_.scan_interval_ms * settings_.cpu_budget_ppm;
  return std::max<uint64_t>(budget_ns / std::max<uint64_t>(per_page, 1), 1);
}

}  // namespace coldheap::policy
