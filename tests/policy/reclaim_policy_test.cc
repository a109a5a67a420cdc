#include "policy/reclaim_policy.h"

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
  for (int minute = 0; minute < 3; ++minute) {
    Decision d = trace.RunMinute(6000);
    EXPECT_EQ(d.promotions_per_minute, 6000u);
    EXPECT_EQ(d.cold_age_scans, 0u);
    EXPECT_EQ(d.min_age_scans, 0u);
  }
}

// ---------------------------------------------------------------------------
// A hot set that shifts: promotions above the objective double the cold
// threshold once per minute window; when they stop it halves back to the
// floor. 10'000 resident pages at 0.2%/minute: the objective is 20/minute.

TEST(ReclaimPolicyTest, HighPromotionRateDoublesThresholdWhenMinuteWindowCloses) {
  Trace trace(Defaults());
  EXPECT_EQ(trace.Scan().cold_age_scans, 30u);  // opens the window at t=0
  for (int s = 1; s < 60; ++s) {
    Decision d = trace.Scan(10);
    ASSERT_EQ(d.cold_age_scans, 30u) << "moved before the window closed, t="
                                     << trace.now_ms() - 1000 << " ms";
    ASSERT_EQ(d.min_age_scans, 30u);
  }
  Decision d = trace.Scan(10);  // t = 60 s
  EXPECT_EQ(d.promotions_per_minute, 600u);
  EXPECT_EQ(d.cold_age_scans, 60u);
  EXPECT_EQ(d.min_age_scans, 60u);
}

TEST(ReclaimPolicyTest, ThresholdDoublesOncePerWindowAndIsCappedAt255) {
  Trace trace(Defaults());
  trace.Scan();
  std::vector<uint32_t> thresholds;
  for (int minute = 0; minute < 6; ++minute) {
    thresholds.push_back(trace.RunMinute(600).cold_age_scans);
  }
  EXPECT_EQ(thresholds, (std::vector<uint32_t>{60, 120, 240, 255, 255, 255}));
}

TEST(ReclaimPolicyTest, ThresholdHalvesBackToFloorWhenRefaultsStopNeverBelow) {
  Trace trace(Defaults());
  trace.Scan();
  for (int minute = 0; minute < 5; ++minute) trace.RunMinute(600);
  ASSERT_EQ(trace.Scan().cold_age_scans, 255u);

  std::vector<uint32_t> thresholds;
  for (int minute = 0; minute < 7; ++minute) {
    Decision d = trace.RunMinute(0);
    EXPECT_EQ(d.min_age_scans, d.cold_age_scans);
    thresholds.push_back(d.cold_age_scans);
  }
  EXPECT_EQ(thresholds, (std::vector<uint32_t>{127, 63, 31, 30, 30, 30, 30}));
}

TEST(ReclaimPolicyTest, ThresholdAtFloorStaysThereWithoutRefaults) {
  Trace trace(Defaults());
  trace.Scan();
  for (int minute = 0; minute < 5; ++minute) {
    EXPECT_EQ(trace.RunMinute(0).cold_age_scans, 30u);
  }
}

TEST(ReclaimPolicyTest, PromotionRateWithinObjectiveHoldsThreshold) {
  Trace trace(Defaults());
  trace.Scan();
  ASSERT_EQ(trace.RunMinute(600).cold_age_scans, 60u);
  // Between a quarter of the objective (5/minute) and the objective itself.
  EXPECT_EQ(trace.RunMinute(20).cold_age_scans, 60u);
  EXPECT_EQ(trace.RunMinute(10).cold_age_scans, 60u);
  EXPECT_EQ(trace.RunMinute(5).cold_age_scans, 60u);
  // Just under a quarter: relax; just over the objective: back off again.
  EXPECT_EQ(trace.RunMinute(4).cold_age_scans, 30u);
  EXPECT_EQ(trace.RunMinute(21).cold_age_scans, 60u);
}

TEST(ReclaimPolicyTest, ShiftingHotSetRaisesThresholdThenRelaxesToFloor) {
  // Minutes 0-1: the hot set moves onto pages compressed a while ago, which
  // refault in bulk. Minutes 2-5: the new hot set is resident; quiet again.
  Trace trace(Defaults());
  trace.Scan();
  std::vector<uint32_t> thresholds;
  for (uint64_t refaults : {3000, 3000, 0, 0, 0, 0}) {
    thresholds.push_back(trace.RunMinute(refaults).cold_age_scans);
  }
  EXPECT_EQ(thresholds, (std::vector<uint32_t>{60, 120, 60, 30, 30, 30}));
}

TEST(ReclaimPolicyTest, ZeroPromotionObjectiveStillRelaxesWhenRefaultsStop) {
  PolicySettings settings = Defaults();
  settings.promotion_rate_ppm_per_minute = 0;  // COLDHEAP_PROMOTION_RATE=0
  Trace trace(settings);
  trace.Scan();
  EXPECT_EQ(trace.RunMinute(1).cold_age_scans, 60u);
  EXPECT_EQ(trace.RunMinute(1).cold_age_scans, 120u);
  EXPECT_EQ(trace.RunMinute(0).cold_age_scans, 60u);
  EXPECT_EQ(trace.RunMinute(0).cold_age_scans, 30u);
}

TEST(ReclaimPolicyTest, PromotionRateIsRelativeToResidentPages) {
  // 600 promotions a minute is 6% of 10'000 pages but 0.06% of 1'000'000.
  Trace small(Defaults(), 10'000);
  Trace large(Defaults(), 1'000'000);
  small.Scan();
  large.Scan();
  EXPECT_EQ(small.RunMinute(600).cold_age_scans, 60u);
  EXPECT_EQ(large.RunMinute(600).cold_age_scans, 30u);
}

// ---------------------------------------------------------------------------
// A read-only hot set: writes never reset its ages, so it goes cold and is
// compressed; every read then refaults. The refaults are the promotions.

TEST(ReclaimPolicyTest, ReadOnlyHotSetRefaultsReportedAsPromotionsPerMinute) {
  Trace trace(Defaults());
  // The hot set is never written: all of it looks old.
  trace.report().age_histogram[0] = 0;
  trace.report().age_histogram[200] = 10'000;
  Decision d = trace.Scan();
  EXPECT_EQ(d.promotions_per_minute, 0u);
  for (int s = 1; s < 60; ++s) {
    ASSERT_EQ(trace.Scan(5).promotions_per_minute, 0u) << "no window yet";
  }
  d = trace.Scan(5);  // the window closes: 300 reads of compressed pages
  EXPECT_EQ(d.promotions_per_minute, 300u);
  EXPECT_EQ(d.cold_age_scans, 60u);
  // The figure stands until the next window closes.
  for (int s = 1; s < 60; ++s) {
    ASSERT_EQ(trace.Scan(1).promotions_per_minute, 300u);
  }
  d = trace.Scan(1);
  EXPECT_EQ(d.promotions_per_minute, 60u);
}

TEST(ReclaimPolicyTest, PromotionsPerMinuteNormalisedToWindowLength) {
  // 45 s scans: the first window closes at 90 s, holding 300 refaults.
  PolicySettings settings = Defaults();
  settings.scan_interval_ms = 45'000;
  settings.cold_age_ms = 90'000;
  Trace trace(settings);
  trace.Scan();
  EXPECT_EQ(trace.Scan(150).promotions_per_minute, 0u);  // t = 45 s
  Decision d = trace.Scan(150);                           // t = 90 s
  EXPECT_EQ(d.promotions_per_minute, 200u);
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
