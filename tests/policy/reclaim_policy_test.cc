#include "policy/reclaim_policy.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

// The policy is driven by hand-built ScanReports on a fake clock: each test
// sets the counters the shim would report and advances now_ms itself.
namespace coldheap::policy {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMinute = 60'000;
constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// Settings unless a test says otherwise, spelled out so that the tests do not
// move with PolicySettings' defaults: 1 s scans, a 30 s cold age (a floor of
// 30 scans), promotions up to 0.2% of the resident pages per minute, no
// TARGET, a pool limit of 20% of the heap accepting again below 90% of it, a
// 2% CPU budget.
PolicySettings Defaults() {
  PolicySettings settings;
  settings.scan_interval_ms = 1000;
  settings.cold_age_ms = 30'000;
  settings.promotion_rate_ppm_per_minute = 2000;
  settings.target_bytes = 0;
  settings.target_heap_percent = 0;
  settings.max_pool_percent = 20;
  settings.accept_threshold_percent = 90;
  settings.cpu_budget_ppm = 20'000;
  return settings;
}

// A synthetic trace: a fake clock and the cumulative counters of one heap.
// Scan() reports at the current time, then moves the clock one interval on.
class Trace {
 public:
  explicit Trace(const PolicySettings& settings, uint64_t resident_pages = 10'000)
      : interval_ms_(settings.scan_interval_ms), policy_(settings) {
    report_.heap_pages = resident_pages;
    report_.resident_pages = resident_pages;
    report_.age_histogram[0] = resident_pages;
  }

  // `refaults` compressed pages were faulted back since the previous scan.
  Decision Scan(uint64_t refaults = 0) {
    report_.now_ms = now_ms_;
    report_.refaults_total += refaults;
    report_.unlearned_refaults_total += refaults;
    Decision decision = policy_.Decide(report_);
    now_ms_ += interval_ms_;
    return decision;
  }

  // One minute of scans (the policy's window) with `refaults` spread over
  // them; the last scan closes the window. Returns its decision.
  Decision RunMinute(uint64_t refaults) {
    uint64_t scans = kMinute / interval_ms_;
    Decision decision;
    for (uint64_t i = 1; i <= scans; ++i) {
      decision = Scan(refaults * i / scans - refaults * (i - 1) / scans);
    }
    return decision;
  }

  uint64_t now_ms() const { return now_ms_; }
  ScanReport& report() { return report_; }
  ReclaimPolicy& policy() { return policy_; }

 private:
  uint64_t interval_ms_;
  uint64_t now_ms_ = 0;
  ScanReport report_;
  ReclaimPolicy policy_;
};

// ---------------------------------------------------------------------------
// One-off scan over everything; stress mode.

TEST(ReclaimPolicyTest, FirstDecisionOverWholeHeapUsesColdAgeFloor) {
  ReclaimPolicy policy(Defaults());
  ScanReport report;
  for (int age = 0; age < kAgeBuckets; ++age) report.age_histogram[age] = 100;
  report.heap_pages = report.resident_pages = 100 * kAgeBuckets;

  Decision d = policy.Decide(report);

  EXPECT_EQ(d.cold_age_scans, 30u);
  EXPECT_EQ(d.min_age_scans, 30u);
  EXPECT_EQ(d.max_pages, 2000u);  // 2% of 1 s at the 10 us/page guess
  EXPECT_FALSE(d.pool_full);
  EXPECT_FALSE(d.target_unreachable);
  EXPECT_EQ(d.promotions_per_minute, 0u);
  EXPECT_EQ(policy.pool_limit_hits(), 0u);
  EXPECT_EQ(policy.target_unreachable_events(), 0u);
}

TEST(ReclaimPolicyTest, ColdAgeFloorRoundsUpToWholeScansWithinAgeRange) {
  struct Case {
    uint64_t cold_age_ms, interval_ms;
    uint32_t scans;
  };
  for (const Case& c : {Case{1500, 1000, 2}, Case{1, 1000, 1},
                        Case{30'000, 100, 255}, Case{24 * 3'600'000, 1, 255},
                        Case{2 * kMinute, kMinute, 2}}) {
    PolicySettings settings = Defaults();
    settings.cold_age_ms = c.cold_age_ms;
    settings.scan_interval_ms = c.interval_ms;
    ReclaimPolicy policy(settings);
    Decision d = policy.Decide(ScanReport{});
    EXPECT_EQ(d.cold_age_scans, c.scans)
        << c.cold_age_ms << " ms at " << c.interval_ms << " ms per scan";
    EXPECT_EQ(d.min_age_scans, c.scans);
  }
}

TEST(ReclaimPolicyTest, StressModeReclaimsEveryResidentPageUncapped) {
  PolicySettings settings = Defaults();
  settings.cold_age_ms = 0;
  Trace trace(settings);
  Decision d = trace.Scan();
  EXPECT_EQ(d.cold_age_scans, 0u);
  EXPECT_EQ(d.min_age_scans, 0u);
  EXPECT_EQ(d.max_pages, kUnlimited);

  // Even once the work is measured as expensive, stress mode stays uncapped.
  trace.report().pages_processed = 1000;
  trace.report().cpu_ns = 1'000'000'000;  // 1 ms per page
  d = trace.Scan();
  EXPECT_EQ(d.min_age_scans, 0u);
  EXPECT_EQ(d.max_pages, kUnlimited);
}

TEST(ReclaimPolicyTest, StressModeReportsPromotionsButNeverRaisesThreshold) {
  PolicySettings settings = Defaults();
  settings.cold_age_ms = 0;
  Trace trace(settings);
  trace.Scan();
  for (int minute = 0; minute < 20; ++minute) {
    Decision d = trace.RunMinute(6000);
    EXPECT_NEAR(static_cast<double>(d.promotions_per_minute), 6000,
                minute < 15 ? 6000 : 100);
    EXPECT_EQ(d.cold_age_scans, 0u);
    EXPECT_EQ(d.min_age_scans, 0u);
  }
}

// ---------------------------------------------------------------------------
// The global threshold: a smoothed promotion rate, a small step every scan.
// 10'000 resident pages at 0.2%/minute: the objective is 20/minute.

// Runs `minutes` of scans at `per_minute` refaults; returns every scan's
// threshold.
std::vector<uint32_t> Thresholds(Trace& trace, int minutes, uint64_t per_minute) {
  std::vector<uint32_t> out;
  for (int m = 0; m < minutes; ++m) {
    for (uint64_t s = 1; s <= 60; ++s) {
      out.push_back(trace.Scan(per_minute * s / 60 - per_minute * (s - 1) / 60)
                        .cold_age_scans);
    }
  }
  return out;
}

TEST(ReclaimPolicyTest, RefaultsAboveObjectiveRaiseThresholdInSmallStepsEveryScan) {
  Trace trace(Defaults());
  trace.Scan();
  std::vector<uint32_t> t = Thresholds(trace, 1, 600);
  EXPECT_EQ(t.front(), 30u) << "one scan's rate is averaged, not acted on";
  for (size_t i = 1; i < t.size(); ++i) {
    ASSERT_GE(t[i], t[i - 1]) << "scan " << i;
    ASSERT_LE(t[i] - t[i - 1], std::max<uint32_t>(t[i - 1] / 64, 1)) << "scan " << i;
  }
  EXPECT_GT(t.back(), 33u);
  EXPECT_LT(t.back(), 60u) << "doubles in about 3 minutes, not 1";
}

TEST(ReclaimPolicyTest, ThresholdIsCappedAt255) {
  Trace trace(Defaults());
  trace.Scan();
  EXPECT_EQ(Thresholds(trace, 15, 6000).back(), 255u);
}

TEST(ReclaimPolicyTest, ThresholdRelaxesBackToFloorWhenRefaultsStopNeverBelow) {
  Trace trace(Defaults());
  trace.Scan();
  ASSERT_EQ(Thresholds(trace, 15, 6000).back(), 255u);
  std::vector<uint32_t> t = Thresholds(trace, 45, 0);
  for (size_t i = 1; i < t.size(); ++i) ASSERT_LE(t[i], t[i - 1]);
  EXPECT_EQ(*std::min_element(t.begin(), t.end()), 30u);
  EXPECT_EQ(t.back(), 30u);
}

TEST(ReclaimPolicyTest, ThresholdAtFloorStaysThereWithoutRefaults) {
  Trace trace(Defaults());
  trace.Scan();
  for (uint32_t t : Thresholds(trace, 5, 0)) ASSERT_EQ(t, 30u);
}

TEST(ReclaimPolicyTest, PromotionRateWithinObjectiveHoldsThreshold) {
  Trace trace(Defaults());
  trace.Scan();
  uint32_t raised = Thresholds(trace, 1, 600).back();
  ASSERT_GT(raised, 30u);
  // Between a quarter of the objective (5/minute) and the objective itself,
  // once the average has come down from 600 into the band.
  std::vector<uint32_t> t = Thresholds(trace, 20, 12);
  uint32_t settled = t[10 * 60];
  for (size_t i = 10 * 60; i < t.size(); ++i) ASSERT_EQ(t[i], settled) << i;
  // Under a quarter: relax; over the objective: back off again.
  uint32_t relaxed = Thresholds(trace, 10, 3).back();
  EXPECT_LT(relaxed, settled);
  EXPECT_GT(Thresholds(trace, 10, 40).back(), relaxed);
}

// A closed loop: the refaults a threshold causes, seen half a minute later
// (pages taken out at a threshold come back some time after). Refaults per
// minute = 2e5 / threshold^2, inside the dead band for thresholds 100..200.
TEST(ReclaimPolicyTest, StationaryWorkloadThresholdSettlesAndStaysSettled) {
  Trace trace(Defaults());
  std::vector<uint32_t> history(30, 30);
  double owed = 0;
  std::vector<uint32_t> t;
  for (int s = 0; s < 120 * 60; ++s) {
    double threshold = history[s % 30];
    owed += 2e5 / (threshold * threshold) / 60;
    auto refaults = static_cast<uint64_t>(owed);
    owed -= static_cast<double>(refaults);
    uint32_t now = trace.Scan(refaults).cold_age_scans;
    history[s % 30] = now;
    t.push_back(now);
  }
  // The last hour: settled in the band, and not moving.
  auto [lo, hi] = std::minmax_element(t.begin() + 60 * 60, t.end());
  EXPECT_GE(*lo, 100u);
  EXPECT_LE(*hi, 200u);
  EXPECT_LE(*hi - *lo, 2u) << "oscillates between " << *lo << " and " << *hi;
}

TEST(ReclaimPolicyTest, ZeroPromotionObjectiveStillRelaxesWhenRefaultsStop) {
  PolicySettings settings = Defaults();
  settings.promotion_rate_ppm_per_minute = 0;  // COLDHEAP_PROMOTION_RATE=0
  Trace trace(settings);
  trace.Scan();
  EXPECT_GT(Thresholds(trace, 2, 10).back(), 30u);
  EXPECT_EQ(Thresholds(trace, 20, 0).back(), 30u);
}

TEST(ReclaimPolicyTest, PromotionRateIsRelativeToResidentPages) {
  // 600 promotions a minute is 6% of 10'000 pages but 0.06% of 1'000'000.
  Trace small(Defaults(), 10'000);
  Trace large(Defaults(), 1'000'000);
  small.Scan();
  large.Scan();
  EXPECT_GT(Thresholds(small, 2, 600).back(), 30u);
  EXPECT_EQ(Thresholds(large, 2, 600).back(), 30u);
}

TEST(ReclaimPolicyTest, PromotionsPerMinuteIsASmoothedRateThatConverges) {
  Trace trace(Defaults());
  trace.Scan();
  Decision d = trace.Scan(5);  // one scan: 300/minute, but one scan only
  EXPECT_GT(d.promotions_per_minute, 0u);
  EXPECT_LT(d.promotions_per_minute, 30u);
  Thresholds(trace, 15, 300);
  EXPECT_NEAR(static_cast<double>(trace.Scan(5).promotions_per_minute), 300, 5);
}

TEST(ReclaimPolicyTest, PromotionsPerMinuteNormalisedToScanLength) {
  // 45 s scans of 150 refaults each: 200 a minute.
  PolicySettings settings = Defaults();
  settings.scan_interval_ms = 45'000;
  settings.cold_age_ms = 90'000;
  Trace trace(settings);
  trace.Scan();
  Decision d;
  for (int s = 0; s < 40; ++s) d = trace.Scan(150);
  EXPECT_NEAR(static_cast<double>(d.promotions_per_minute), 200, 2);
}

// ---------------------------------------------------------------------------
// The refaults' cost comes off the CPU budget before the evictor's share.

TEST(ReclaimPolicyTest, RefaultCostComesOffTheCpuBudget) {
  // 2% of 1 s = 20 ms a scan; refaults costing 10 ms a second leave half.
  Trace quiet(Defaults());
  Trace costly(Defaults());
  uint64_t full = 0;
  Decision d;
  for (int s = 0; s < 600; ++s) {
    full = quiet.Scan().max_pages;
    costly.report().refault_cost_ns_total += 10'000'000;
    d = costly.Scan();
  }
  EXPECT_EQ(full, 20'000'000u / 10'000);  // the initial 10 us a page
  EXPECT_NEAR(static_cast<double>(d.max_pages), full / 2.0, full * 0.02);
  EXPECT_NEAR(static_cast<double>(d.refault_cost_ppm), 10'000, 100);
}

// The dense tier's recompression shares the budget too: eviction gets what
// refaults and the tier leave.
TEST(ReclaimPolicyTest, DenseTierCostComesOffTheCpuBudget) {
  Trace quiet(Defaults());
  Trace dense(Defaults());
  uint64_t full = 0;
  Decision d;
  for (int s = 0; s < 600; ++s) {
    full = quiet.Scan().max_pages;
    dense.report().dense_cost_ns_total += 5'000'000;   // a quarter
    dense.report().refault_cost_ns_total += 5'000'000;  // and as much again
    d = dense.Scan();
  }
  EXPECT_NEAR(static_cast<double>(d.max_pages), full / 2.0, full * 0.02);
  for (int s = 0; s < 300; ++s) {
    dense.report().dense_cost_ns_total += 25'000'000;  // more than all
    d = dense.Scan();
  }
  EXPECT_EQ(d.max_pages, 0u);
}

// The tier's share per pass, with a budget of 20 ms (2% of a 1 s pass).
TEST(DenseAllowanceTest, EvictionThatNeedsTheWholeBudgetGoesFirst) {
  // Cold pages still resident and no refaults: eviction spends it all.
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 20'000'000, 0), 0);
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 19'000'000, 0), 1'000'000);
  // Eviction went over: a debt the next passes pay.
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 22'000'000, 0), -2'000'000);
}

TEST(DenseAllowanceTest, RefaultsThatEatTheBudgetLeaveTheTierAQuarter) {
  // Eviction gets what refaults leave and never settles: the deep-cold pool
  // is still recompressed, with up to a quarter.
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 4'000'000, 16'000'000), 5'000'000);
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 0, 40'000'000), 5'000'000);
  // ...but not more than eviction left.
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 18'000'000, 2'000'000), 2'000'000);
}

TEST(DenseAllowanceTest, SettledEvictionLeavesTheTierTheRest) {
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 1'000'000, 1'000'000), 18'000'000);
  EXPECT_EQ(DenseAllowanceNs(20'000'000, 0, 0), 20'000'000);
}

TEST(ReclaimPolicyTest, RefaultCostOverBudgetStopsNewEvictions) {
  Trace trace(Defaults());
  for (int s = 0; s < 300; ++s) {
    trace.report().refault_cost_ns_total += 30'000'000;  // 3% of a core
    trace.Scan();
  }
  EXPECT_EQ(trace.Scan().max_pages, 0u);
  // Once they subside, eviction resumes.
  for (int s = 0; s < 300; ++s) trace.Scan();
  EXPECT_GT(trace.Scan().max_pages, 0u);
}

TEST(ReclaimPolicyTest, OverTargetRefaultCostDoesNotHoldReclaimBack) {
  PolicySettings settings = Defaults();
  settings.target_bytes = 5'000 * kPage;  // half of the 10'000 resident pages
  Trace trace(settings);
  trace.report().age_histogram[0] = 0;
  trace.report().age_histogram[100] = 10'000;
  for (int s = 0; s < 300; ++s) {
    trace.report().refault_cost_ns_total += 30'000'000;
    trace.Scan();
  }
  EXPECT_GT(trace.Scan().max_pages, 0u);
}

// ---------------------------------------------------------------------------
// A working set growing past TARGET: reclaim oldest first, down to the
// youngest age that frees enough; say once when it cannot.

// Resident pages: 100 at age 250, 1'000 at 120, 10'000 at 60, 100'000 at 5,
// 10'000 at 0. The buckets grow tenfold, so which one is needed does not
// depend on how much a compressed page is assumed to cost in the pool
// (anything from nothing up to half a page).
ScanReport LayeredHeap() {
  ScanReport report;
  report.age_histogram[250] = 100;
  report.age_histogram[120] = 1'000;
  report.age_histogram[60] = 10'000;
  report.age_histogram[5] = 100'000;
  report.age_histogram[0] = 10'000;
  report.resident_pages = 121'100;
  report.heap_pages = 121'100;
  // A pool with an average to go by (its pages cost nothing here), so the
  // policy takes full budget steps.
  report.evicted_pages = 64;
  return report;
}

// The cold floor out of the way (255 scans), so min_age is the budget's.
PolicySettings BudgetSettings(uint64_t target_bytes) {
  PolicySettings settings = Defaults();
  settings.cold_age_ms = 600'000;
  settings.target_bytes = target_bytes;
  return settings;
}

TEST(ReclaimPolicyTest, UnderTargetBytesReclaimsOnlyColdPages) {
  ReclaimPolicy policy(BudgetSettings(121'100 * kPage));  // exactly at target
  Decision d = policy.Decide(LayeredHeap());
  EXPECT_EQ(d.min_age_scans, 255u);
  EXPECT_FALSE(d.target_unreachable);
}

TEST(ReclaimPolicyTest, OverTargetBytesReclaimsOldestFirstDownToYoungestAgeThatFreesEnough) {
  struct Case {
    uint64_t excess_pages;
    uint32_t min_age;
  };
  for (const Case& c : {Case{50, 250}, Case{500, 120}, Case{5'000, 60},
                        Case{50'000, 5}}) {
    ReclaimPolicy policy(BudgetSettings((121'100 - c.excess_pages) * kPage));
    Decision d = policy.Decide(LayeredHeap());
    EXPECT_EQ(d.min_age_scans, c.min_age) << c.excess_pages << " pages over";
    EXPECT_FALSE(d.target_unreachable) << c.excess_pages << " pages over";
    EXPECT_EQ(policy.target_unreachable_events(), 0u);
  }
}

TEST(ReclaimPolicyTest, TargetCountsPoolBytesInFootprint) {
  ReclaimPolicy policy(BudgetSettings(121'100 * kPage));
  ScanReport report = LayeredHeap();
  report.pool_total_size = 50 * kPage;  // resident alone is at the target
  report.evicted_pages = 1'000;         // at 205 bytes a page
  EXPECT_EQ(policy.Decide(report).min_age_scans, 250u);
}

TEST(ReclaimPolicyTest, BudgetNeverMakesReclaimLessAggressiveThanColdThreshold) {
  PolicySettings settings = BudgetSettings((121'100 - 50) * kPage);
  settings.cold_age_ms = 30'000;  // a floor of 30 scans; the budget wants 250
  ReclaimPolicy policy(settings);
  Decision d = policy.Decide(LayeredHeap());
  EXPECT_EQ(d.cold_age_scans, 30u);
  EXPECT_EQ(d.min_age_scans, 30u);
}

TEST(ReclaimPolicyTest, TargetPercentIsAShareOfTheHeap) {
  PolicySettings settings = BudgetSettings(0);
  settings.target_heap_percent = 50;
  ReclaimPolicy policy(settings);
  ScanReport report = LayeredHeap();

  report.heap_pages = 2 * 121'100;  // target 121'100 pages: at it
  EXPECT_EQ(policy.Decide(report).min_age_scans, 255u);
  report.heap_pages = 2 * (121'100 - 500);  // 500 pages over
  EXPECT_EQ(policy.Decide(report).min_age_scans, 120u);
  report.heap_pages = 2 * (121'100 - 50'000);
  EXPECT_EQ(policy.Decide(report).min_age_scans, 5u);
  EXPECT_FALSE(policy.Decide(report).target_unreachable);
}

TEST(ReclaimPolicyTest, FirstBudgetStepIsHalfUntilThePoolHasAnAverage) {
  // 14'000 pages over the target: with the measured (free) pool cost that
  // reaches into the age-5 bucket; without a measured ratio, half of the
  // guessed 21'000 is asked for, which the older buckets cover.
  ReclaimPolicy policy(BudgetSettings((121'100 - 14'000) * kPage));
  ScanReport report = LayeredHeap();
  report.evicted_pages = 0;
  Decision first = policy.Decide(report);
  report.evicted_pages = 64;
  Decision measured = policy.Decide(report);
  EXPECT_FALSE(first.target_unreachable);
  EXPECT_EQ(first.min_age_scans, 60u);
  EXPECT_EQ(measured.min_age_scans, 5u);
}

TEST(ReclaimPolicyTest, TargetBytesTakesPrecedenceOverPercent) {
  PolicySettings settings = BudgetSettings((121'100 - 500) * kPage);
  settings.target_heap_percent = 1;  // would ask for everything
  ReclaimPolicy policy(settings);
  EXPECT_EQ(policy.Decide(LayeredHeap()).min_age_scans, 120u);
}

TEST(ReclaimPolicyTest, TargetUnreachableWhenColdPagesCannotCoverExcess) {
  // 111'100 pages are at least a scan old; 115'000 over is beyond them.
  ReclaimPolicy policy(BudgetSettings((121'100 - 115'000) * kPage));
  Decision d = policy.Decide(LayeredHeap());
  EXPECT_TRUE(d.target_unreachable);
  EXPECT_EQ(d.min_age_scans, 1u);  // all that was not written last scan
  EXPECT_EQ(policy.target_unreachable_events(), 1u);
}

TEST(ReclaimPolicyTest, TargetUnreachableEventsCountTransitionsNotScans) {
  ReclaimPolicy policy(BudgetSettings(100'000 * kPage));
  ScanReport reachable = LayeredHeap();  // 21'100 over, 111'100 cold
  ScanReport unreachable = LayeredHeap();
  // A burst of fresh pages: 121'100 over, more than all 111'100 cold ones.
  unreachable.age_histogram[0] += 100'000;
  unreachable.resident_pages += 100'000;
  unreachable.heap_pages += 100'000;
  ScanReport under = LayeredHeap();
  under.age_histogram[5] -= 30'000;
  under.resident_pages -= 30'000;

  uint64_t now = 0;
  auto decide = [&](ScanReport report) {
    report.now_ms = now += 1000;
    return policy.Decide(report);
  };
  for (int s = 0; s < 5; ++s) {
    Decision d = decide(unreachable);
    EXPECT_TRUE(d.target_unreachable);
    EXPECT_EQ(policy.target_unreachable_events(), 1u) << "scan " << s;
  }
  Decision d = decide(reachable);
  EXPECT_FALSE(d.target_unreachable);
  EXPECT_EQ(d.min_age_scans, 5u);
  d = decide(under);
  EXPECT_FALSE(d.target_unreachable);
  EXPECT_EQ(d.min_age_scans, 255u);
  EXPECT_EQ(policy.target_unreachable_events(), 1u);

  EXPECT_TRUE(decide(unreachable).target_unreachable);
  EXPECT_TRUE(decide(unreachable).target_unreachable);
  EXPECT_EQ(policy.target_unreachable_events(), 2u);
}

TEST(ReclaimPolicyTest, WorkingSetGrowingPastTargetIsReclaimedBackUnderIt) {
  // 1'000 new pages a scan, never written again; target 20'000 pages. Each
  // scan the decision is carried out: resident pages at least min_age old
  // are compressed, oldest first, to a quarter of a page each.
  constexpr uint64_t kTargetPages = 20'000;
  constexpr uint64_t kGrowth = 1'000;
  PolicySettings settings = BudgetSettings(kTargetPages * kPage);
  settings.cpu_budget_ppm = 1'000'000;  // not the limit here
  Trace trace(settings, 0);
  std::vector<uint64_t> by_age(kAgeBuckets, 0);
  uint64_t compressed = 0;
  bool went_over = false;

  for (int scan = 0; scan < 50; ++scan) {
    by_age[0] += kGrowth;
    ScanReport& report = trace.report();
    report.resident_pages = 0;
    for (int age = 0; age < kAgeBuckets; ++age) {
      report.age_histogram[age] = by_age[age];
      report.resident_pages += by_age[age];
    }
    report.heap_pages = report.resident_pages + compressed;
    report.pool_total_size = compressed * kPage / 4;
    report.evicted_pages = compressed;
    // Before the pool has an average, the policy takes a half step.
    bool measured = compressed >= 64;
    bool over = report.resident_pages * kPage + report.pool_total_size >
                kTargetPages * kPage;
    went_over |= over;

    Decision d = trace.Scan();
    ASSERT_FALSE(d.target_unreachable) << "scan " << scan;
    if (!over) {
      EXPECT_EQ(d.min_age_scans, 255u) << "scan " << scan;
    } else {
      EXPECT_GE(d.min_age_scans, 1u) << "scan " << scan;
      EXPECT_LT(d.min_age_scans, 255u) << "scan " << scan;
    }
    for (int age = kAgeBuckets - 1; age >= static_cast<int>(d.min_age_scans);
         --age) {
      compressed += by_age[age];
      by_age[age] = 0;
    }
    uint64_t resident = 0;
    for (uint64_t pages : by_age) resident += pages;
    if (measured) {
      EXPECT_LE(resident * kPage + compressed * kPage / 4, kTargetPages * kPage)
          << "still over target after scan " << scan;
    }
    // One scan later: everything ages by one, saturating at 255.
    by_age[kAgeBuckets - 1] += by_age[kAgeBuckets - 2];
    for (int age = kAgeBuckets - 2; age >= 1; --age) by_age[age] = by_age[age - 1];
    by_age[0] = 0;
  }
  EXPECT_TRUE(went_over);
  EXPECT_EQ(trace.policy().target_unreachable_events(), 0u);
}

// ---------------------------------------------------------------------------
// The pool limit, with zswap's hysteresis. A heap of 1'000 pages at 20%: the
// limit is 819'200 bytes; the accept threshold (90%) is 737'280 bytes.

constexpr uint64_t kLimit = 1'000 * kPage * 20 / 100;
constexpr uint64_t kAccept = kLimit * 90 / 100;

class PoolLimitTest : public ::testing::Test {
 protected:
  Decision WithPool(uint64_t pool_bytes, uint64_t heap_pages = 1'000) {
    ScanReport report;
    report.now_ms = now_ms_ += 1000;
    report.heap_pages = report.resident_pages = heap_pages;
    report.age_histogram[0] = heap_pages;
    report.pool_total_size = pool_bytes;
    return policy_.Decide(report);
  }

  ReclaimPolicy policy_{Defaults()};
  uint64_t now_ms_ = 0;
};

TEST_F(PoolLimitTest, PoolFullTurnsOnAtMaxPoolPercentOfHeap) {
  EXPECT_FALSE(WithPool(0).pool_full);
  EXPECT_FALSE(WithPool(kLimit - 1).pool_full);
  EXPECT_EQ(policy_.pool_limit_hits(), 0u);
  EXPECT_TRUE(WithPool(kLimit).pool_full);
  EXPECT_EQ(policy_.pool_limit_hits(), 1u);
}

TEST_F(PoolLimitTest, PoolFullStaysOnUntilBelowAcceptThreshold) {
  ASSERT_TRUE(WithPool(kLimit).pool_full);
  EXPECT_TRUE(WithPool(kLimit - 1).pool_full);
  EXPECT_TRUE(WithPool(800'000).pool_full);
  EXPECT_TRUE(WithPool(kAccept).pool_full);
  EXPECT_FALSE(WithPool(kAccept - 1).pool_full);
  EXPECT_FALSE(WithPool(kLimit - 1).pool_full);  // refilling: not yet full
  EXPECT_EQ(policy_.pool_limit_hits(), 1u);
}

TEST_F(PoolLimitTest, PoolHoveringAroundLimitDoesNotFlapNorRecountHits) {
  for (int s = 0; s < 20; ++s) {
    Decision d = WithPool(s % 2 == 0 ? kLimit + 1 : kLimit - 1);
    EXPECT_TRUE(d.pool_full) << "scan " << s;
  }
  EXPECT_EQ(policy_.pool_limit_hits(), 1u);
  EXPECT_FALSE(WithPool(kAccept - 4096).pool_full);
  EXPECT_EQ(policy_.pool_limit_hits(), 1u);
  EXPECT_TRUE(WithPool(kLimit).pool_full);
  EXPECT_EQ(policy_.pool_limit_hits(), 2u);
}

TEST_F(PoolLimitTest, PoolLimitFollowsHeapSize) {
  ASSERT_TRUE(WithPool(kLimit).pool_full);
  // The heap doubles: the same pool is now 50% of its limit.
  EXPECT_FALSE(WithPool(kLimit, 2'000).pool_full);
  EXPECT_FALSE(WithPool(2 * kLimit - 1, 2'000).pool_full);
  EXPECT_TRUE(WithPool(2 * kLimit, 2'000).pool_full);
  EXPECT_EQ(policy_.pool_limit_hits(), 2u);
}

TEST(ReclaimPolicyTest, AcceptThresholdZeroResumesOnceThePoolIsEmpty) {
  PolicySettings settings = Defaults();
  settings.accept_threshold_percent = 0;  // zswap: take pages again when empty
  ReclaimPolicy policy(settings);
  ScanReport report;
  report.heap_pages = report.resident_pages = 1'000;
  report.pool_total_size = kLimit;
  ASSERT_TRUE(policy.Decide(report).pool_full);
  report.pool_total_size = 1;
  EXPECT_TRUE(policy.Decide(report).pool_full);
  report.pool_total_size = 0;
  EXPECT_FALSE(policy.Decide(report).pool_full);
  EXPECT_EQ(policy.pool_limit_hits(), 1u);
}

// ---------------------------------------------------------------------------
// The CPU budget: max_pages = budget per interval / cost per page, the cost
// an EWMA of cpu_ns / pages_processed, a guess of 10 us before any is known.

TEST(ReclaimPolicyTest, PageCapUsesInitialCostGuessBeforeMeasurement) {
  Trace trace(Defaults());  // 1 s interval, 2% of a core: 20 ms
  EXPECT_EQ(trace.Scan().max_pages, 2000u);
  EXPECT_EQ(trace.Scan().max_pages, 2000u);  // nothing processed yet
}

TEST(ReclaimPolicyTest, PageCapIsBudgetOverMeasuredCostPerPage) {
  struct Case {
    uint64_t pages, cpu_ns, max_pages;
  };
  for (const Case& c : {Case{1'000, 10'000'000, 2'000},  // 10 us/page
                        Case{1'000, 20'000'000, 1'000},  // 20 us/page
                        Case{4'000, 20'000'000, 4'000},  // 5 us/page
                        Case{64, 64'000'000, 20}}) {     // 1 ms/page
    Trace trace(Defaults());
    trace.Scan();
    trace.report().pages_processed = c.pages;
    trace.report().cpu_ns = c.cpu_ns;
    EXPECT_EQ(trace.Scan().max_pages, c.max_pages)
        << c.cpu_ns << " ns for " << c.pages << " pages";
  }
}

TEST(ReclaimPolicyTest, PageCapSmoothsCostChangesAndConverges) {
  Trace trace(Defaults());
  trace.report().pages_processed = 1'000;
  trace.report().cpu_ns = 10'000'000;  // 10 us/page
  for (int s = 0; s < 5; ++s) ASSERT_EQ(trace.Scan().max_pages, 2'000u);

  trace.report().cpu_ns = 40'000'000;  // the work turns 4x dearer
  uint64_t previous = 2'000;
  uint64_t first = trace.Scan().max_pages;
  EXPECT_LT(first, 2'000u);
  EXPECT_GT(first, 500u) << "one scan must not swing the estimate all the way";
  previous = first;
  for (int s = 0; s < 40; ++s) {
    uint64_t cap = trace.Scan().max_pages;
    EXPECT_LE(cap, previous);
    previous = cap;
  }
  EXPECT_NEAR(static_cast<double>(previous), 500.0, 2.0);

  trace.report().cpu_ns = 5'000'000;  // then 8x cheaper
  first = trace.Scan().max_pages;
  EXPECT_GT(first, 500u);
  EXPECT_LT(first, 4'000u);
  for (int s = 0; s < 40; ++s) previous = trace.Scan().max_pages;
  EXPECT_NEAR(static_cast<double>(previous), 4'000.0, 4.0);
}

TEST(ReclaimPolicyTest, PageCapScalesWithIntervalAndBudget) {
  PolicySettings settings = Defaults();
  settings.scan_interval_ms = 100;
  settings.cpu_budget_ppm = 5'000;  // 0.5% of 100 ms: 500 us
  ReclaimPolicy policy(settings);
  EXPECT_EQ(policy.Decide(ScanReport{}).max_pages, 50u);
}

TEST(ReclaimPolicyTest, PageCapIsAtLeastOnePage) {
  PolicySettings settings = Defaults();
  settings.scan_interval_ms = 1;
  settings.cpu_budget_ppm = 1'000;  // 0.1% of 1 ms: 1 us, under a page's cost
  ReclaimPolicy policy(settings);
  EXPECT_EQ(policy.Decide(ScanReport{}).max_pages, 1u);
}

}  // namespace
}  // namespace coldheap::policy
