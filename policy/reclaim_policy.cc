#include "policy/reclaim_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace coldheap::policy {
namespace {

constexpr uint32_t kMaxAgeScans = kAgeBuckets - 1;
constexpr uint64_t kMinuteMs = 60'000;
constexpr uint64_t kPageBytes = 4096;
// Cost assumed for a page before any is measured: an LZ4 compression plus
// the move and the pool store, as measured on our machines.
constexpr uint64_t kInitialNsPerPage = 10'000;
// Time constant of the rate averages: long enough that one bursty scan does
// not move the threshold, short enough to follow a phase change in minutes.
constexpr double kRateSmoothingMs = 120'000;
// The cost of refaults is averaged over a shorter time: after the burst of
// mistakes that every first pass over a heap makes, eviction should resume
// within a minute, not wait out a two-minute average.
constexpr double kCostSmoothingMs = 30'000;
// How fast the threshold moves while the rate is out of its band: slower
// than the rate average, so that the refaults of a move are seen before the
// next doubling, and slower down than up.
constexpr double kDoublingMs = 180'000;
constexpr double kHalvingMs = 360'000;

// Moves `average` towards `sample` by `weight` (an exponential average).
void Smooth(double& average, double sample, double weight) {
  average += weight * (sample - average);
}

}  // namespace

ReclaimPolicy::ReclaimPolicy(const PolicySettings& settings)
    : settings_(settings), cold_age_scans_(FloorScans()), threshold_(cold_age_scans_) {}

uint32_t ReclaimPolicy::FloorScans() const {
  if (settings_.cold_age_ms == 0) return 0;
  uint64_t interval = std::max<uint64_t>(settings_.scan_interval_ms, 1);
  uint64_t scans = (settings_.cold_age_ms + interval - 1) / interval;
  return static_cast<uint32_t>(std::clamp<uint64_t>(scans, 1, kMaxAgeScans));
}

Decision ReclaimPolicy::Decide(const ScanReport& report) {
  double dt_ms = UpdateRates(report);
  AdaptThreshold(report, dt_ms);
  Decision d;
  d.cold_age_scans = cold_age_scans_;
  d.promotions_per_minute = static_cast<uint64_t>(promotions_per_minute_ + 0.5);
  d.refault_cost_ppm = static_cast<uint64_t>(refault_ns_per_ms_ + 0.5);
  bool unreachable = false;
  uint64_t needed = 0;
  uint32_t budget_age = BudgetAge(report, &needed, &unreachable);
  d.min_age_scans = std::min(cold_age_scans_, budget_age);
  if (unreachable && !unreachable_) ++unreachable_events_;
  unreachable_ = unreachable;
  d.target_unreachable = unreachable;
  d.pool_full = PoolFull(report);
  // Over the target, memory comes first: mistakes do not hold reclaim back.
  d.max_pages = PageCap(report, /*count_mistakes=*/needed == 0);
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

// Folds this scan's refaults and mistake cost into the moving averages,
// weighted by the time since the previous scan (an exponential average in
// time, so a late scan counts for the time it covers).
double ReclaimPolicy::UpdateRates(const ScanReport& report) {
  double dt = 0;
  if (seen_report_ && report.now_ms > last_now_ms_) {
    dt = static_cast<double>(report.now_ms - last_now_ms_);
    double refaults = static_cast<double>(report.refaults_total - last_refaults_);
    double unlearned =
        static_cast<double>(report.unlearned_refaults_total - last_unlearned_);
    double cost = static_cast<double>(report.refault_cost_ns_total -
                                      last_refault_cost_ns_);
    double weight = dt / (dt + kRateSmoothingMs);
    Smooth(promotions_per_minute_, refaults * kMinuteMs / dt, weight);
    Smooth(unlearned_per_minute_, unlearned * kMinuteMs / dt, weight);
    Smooth(refault_ns_per_ms_, cost / dt, dt / (dt + kCostSmoothingMs));
    double dense = static_cast<double>(report.dense_cost_ns_total -
                                       last_dense_cost_ns_);
    Smooth(dense_ns_per_ms_, dense / dt, dt / (dt + kCostSmoothingMs));
  }
  seen_report_ = true;
  last_now_ms_ = report.now_ms;
  last_refaults_ = report.refaults_total;
  last_unlearned_ = report.unlearned_refaults_total;
  last_refault_cost_ns_ = report.refault_cost_ns_total;
  last_dense_cost_ns_ = report.dense_cost_ns_total;
  return dt;
}

// A small step every scan, in proportion to the time it covers, on the
// smoothed rate, with a dead band between a quarter of the objective and
// the objective: see the header.
void ReclaimPolicy::AdaptThreshold(const ScanReport& report, double dt_ms) {
  uint32_t floor = FloorScans();
  if (floor == 0) return;  // stress mode does not adapt
  double working_set = static_cast<double>(std::max<uint64_t>(report.resident_pages, 1));
  double rate_ppm = unlearned_per_minute_ * 1e6 / working_set;
  double objective = settings_.promotion_rate_ppm_per_minute;
  if (rate_ppm > objective && unlearned_per_minute_ >= 1) {
    threshold_ *= std::exp2(dt_ms / kDoublingMs);
  } else if (rate_ppm * 4 < objective || unlearned_per_minute_ < 1) {
    // Under one refault a minute is always far enough below: with an
    // objective of 0 (COLDHEAP_PROMOTION_RATE=0) the threshold must still
    // come back down.
    threshold_ /= std::exp2(dt_ms / kHalvingMs);
  }
  threshold_ = std::clamp<double>(threshold_, floor, kMaxAgeScans);
  cold_age_scans_ = static_cast<uint32_t>(threshold_ + 0.5);
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

uint64_t ReclaimPolicy::PageCap(const ScanReport& report, bool count_mistakes) {
  if (FloorScans() == 0) return std::numeric_limits<uint64_t>::max();
  if (report.pages_processed >= 64) {
    uint64_t measured = report.cpu_ns / report.pages_processed;
    ns_per_page_ = ns_per_page_ == 0 ? measured : (ns_per_page_ * 3 + measured) / 4;
  }
  uint64_t per_page = ns_per_page_ == 0 ? kInitialNsPerPage : ns_per_page_;
  // ppm of one core over one interval, in ns: interval_ms * 1e6 * ppm / 1e6.
  double budget_ns = static_cast<double>(settings_.scan_interval_ms) *
                     settings_.cpu_budget_ppm;
  double mistakes_ns =
      count_mistakes ? refault_ns_per_ms_ * settings_.scan_interval_ms : 0;
  if (mistakes_ns >= budget_ns) return 0;  // let the mistakes subside first
  double left = budget_ns - mistakes_ns - dense_ns_per_ms_ * settings_.scan_interval_ms;
  if (left <= 0) return 0;
  return std::max<uint64_t>(
      static_cast<uint64_t>(left / std::max<uint64_t>(per_page, 1)), 1);
}

int64_t DenseAllowanceNs(int64_t budget_ns, int64_t evict_ns, int64_t refault_ns) {
  const int64_t floor = std::min(budget_ns / 4, budget_ns - evict_ns);
  return std::max(floor, budget_ns - evict_ns - refault_ns);
}

}  // namespace coldheap::policy
