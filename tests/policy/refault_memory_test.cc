#include "policy/refault_memory.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "gtest/gtest.h"
#include "policy/reclaim_policy.h"

// Per-page memory of mistakes, on traces with a fake clock. A small model of
// the shim's evictor drives the real policy: each scan ages pages at their
// level's pace, compresses the pages put on probation at the previous scan,
// asks the policy, and puts the oldest candidates on probation. The
// program's accesses come from a trace function; reads are invisible unless
// they hit a page that is out, exactly as with WP_ASYNC tracking.
namespace coldheap::policy {
namespace {

enum class Access { kNone, kRead, kWrite };
enum class Where { kResident, kProbation, kCompressed };

struct Page {
  Where where = Where::kResident;
  uint8_t age = 0;  // ticks, as in the page table
  uint8_t level = 0;
  int evictions = 0;  // times compressed
  int refaults = 0;
  int64_t compressed_at = -1;  // scan of the first compression
};

class PageSim {
 public:
  using Trace = std::function<Access(size_t page, uint64_t scan)>;

  PageSim(size_t pages, uint64_t cold_age_ms, Trace trace)
      : pages_(pages), trace_(std::move(trace)), policy_(Settings(cold_age_ms)) {}

  static PolicySettings Settings(uint64_t cold_age_ms) {
    PolicySettings s;
    s.scan_interval_ms = 1000;
    s.cold_age_ms = cold_age_ms;
    s.promotion_rate_ppm_per_minute = 2000;
    s.max_pool_percent = 100;
    s.cpu_budget_ppm = 1'000'000;  // the budget is not what these test
    return s;
  }

  // One second: the program's accesses, then the evictor's scan.
  Decision Step() {
    ++scan_;
    for (size_t i = 0; i < pages_.size(); ++i) Touch(pages_[i], trace_(i, scan_));
    for (Page& p : pages_) Age(p);
    for (Page& p : pages_) {
      if (p.where == Where::kProbation) Compress(p);
    }
    Decision d = policy_.Decide(Report());
    cold_age_ = d.cold_age_scans;
    Probe(d);
    return d;
  }

  void Run(uint64_t seconds) {
    for (uint64_t s = 0; s < seconds; ++s) Step();
  }

  const Page& page(size_t i) const { return pages_[i]; }
  uint64_t refaults() const { return refaults_; }
  uint64_t scan() const { return scan_; }

 private:
  void Touch(Page& p, Access a) {
    if (a == Access::kNone) return;
    if (p.where != Where::kResident) {  // a refault, judged as the shim does
      uint8_t before = p.level;
      p.level = LevelAfterRefault(p.level, p.age, cold_age_);
      if (p.where == Where::kCompressed) {
        ++refaults_;
        if (p.level <= before) ++unlearned_;
      }
      ++p.refaults;
      p.where = Where::kResident;
      p.age = 0;
    } else if (a == Access::kWrite) {
      p.age = 0;
    }
  }

  void Age(Page& p) {
    if (p.age < 255 && AgesAtScan(p.level, scan_)) ++p.age;
  }

  void Compress(Page& p) {
    p.where = Where::kCompressed;
    ++p.evictions;
    if (p.compressed_at < 0) p.compressed_at = static_cast<int64_t>(scan_);
  }

  ScanReport Report() const {
    ScanReport r;
    r.now_ms = scan_ * 1000;
    for (const Page& p : pages_) {
      if (p.where == Where::kCompressed) {
        ++r.evicted_pages;
      } else {
        ++r.resident_pages;
        if (p.where == Where::kResident) ++r.age_histogram[p.age];
      }
    }
    r.heap_pages = pages_.size();
    r.refaults_total = refaults_;
    r.unlearned_refaults_total = unlearned_;
    return r;
  }

  void Probe(const Decision& d) {
    uint64_t budget = d.max_pages;
    for (Page& p : pages_) {
      if (budget == 0) break;
      if (p.where == Where::kResident && p.age >= d.min_age_scans) {
        p.where = Where::kProbation;
        p.age = 0;
        --budget;
      }
    }
  }

  std::vector<Page> pages_;
  Trace trace_;
  ReclaimPolicy policy_;
  uint64_t scan_ = 0;
  uint32_t cold_age_ = 0;
  uint64_t refaults_ = 0;
  uint64_t unlearned_ = 0;
};

constexpr uint64_t kHour = 3600;
constexpr uint64_t kColdAgeMs = 30'000;
constexpr uint64_t kColdAgeScans = 30;

TEST(RefaultMemoryTest, LevelRisesOnQuickRefaultAndFallsOnLateOneWithinCap) {
  EXPECT_EQ(LevelAfterRefault(0, 3, 30), 1);
  EXPECT_EQ(LevelAfterRefault(4, 30 * kMistakeWindow - 1, 30), 5);
  EXPECT_EQ(LevelAfterRefault(kMaxRefaultLevel, 0, 30), kMaxRefaultLevel);
  EXPECT_EQ(LevelAfterRefault(4, 30 * kMistakeWindow, 30), 3);
  EXPECT_EQ(LevelAfterRefault(0, 10 * kMistakeWindow, 10), 0);
  // The window is capped by what the age byte holds.
  EXPECT_EQ(LevelAfterRefault(2, 254, 100), 3);
  EXPECT_EQ(LevelAfterRefault(2, 255, 100), 1);
  // Stress mode (threshold 0) never learns.
  EXPECT_EQ(LevelAfterRefault(0, 0, 0), 0);
}

TEST(RefaultMemoryTest, PageAtLevelAgesOnceEveryTwoToTheLevelScans) {
  for (uint8_t level : {0, 1, 3, 10}) {
    int ticks = 0;
    for (uint64_t scan = 1; scan <= 4096; ++scan) ticks += AgesAtScan(level, scan);
    EXPECT_EQ(ticks, 4096 >> level) << "level " << int{level};
  }
}

// Page 0 is read every 90 s (three cold ages) and never written; the rest
// are never touched. Without memory it would be taken out once every
// ~cold age: 40 times in an hour.
TEST(RefaultMemoryTest, PageReadEveryFewColdAgesIsTakenOutAtMostLog2CapPlusOneTimesAnHour) {
  PageSim sim(64, kColdAgeMs, [](size_t page, uint64_t scan) {
    return page == 0 && scan % 90 == 0 ? Access::kRead : Access::kNone;
  });
  sim.Run(kHour);
  int cap_log2 = kMaxRefaultLevel;  // the cap is 2^kMaxRefaultLevel
  EXPECT_LE(sim.page(0).evictions, cap_log2 + 1);
  EXPECT_GE(sim.page(0).evictions, 2) << "the model must take it out at all";
  EXPECT_GE(sim.page(0).level, 4);
}

TEST(RefaultMemoryTest, PageNeverTouchedAgainIsCompressedWithinTwoColdAges) {
  PageSim sim(64, kColdAgeMs, [](size_t, uint64_t) { return Access::kNone; });
  sim.Run(2 * kColdAgeScans);
  for (size_t i = 0; i < 64; ++i) {
    ASSERT_GE(sim.page(i).compressed_at, 0) << "page " << i;
    EXPECT_LE(sim.page(i).compressed_at, static_cast<int64_t>(2 * kColdAgeScans));
  }
}

// A page that stops being read keeps its raised threshold until it has
// proved cold; then it is compressed, and a late refault lowers its level.
TEST(RefaultMemoryTest, RaisedPageIsCompressedOnceItProvesColdAndLevelComesDown) {
  bool reading = true;
  uint64_t late_read = 0;
  PageSim sim(8, kColdAgeMs, [&](size_t page, uint64_t scan) {
    if (page != 0) return Access::kNone;
    bool read = reading ? scan % 45 == 0 : scan == late_read;
    return read ? Access::kRead : Access::kNone;
  });
  sim.Run(20 * 60);
  uint8_t raised = sim.page(0).level;
  ASSERT_GE(raised, 2);
  reading = false;
  int evictions = sim.page(0).evictions;
  // Resident until it has aged its threshold, then out for longer than its
  // mistake window.
  sim.Run((kColdAgeScans + 256u) << raised);
  EXPECT_GT(sim.page(0).evictions, evictions);
  ASSERT_EQ(sim.page(0).where, Where::kCompressed);
  EXPECT_EQ(sim.page(0).level, raised);
  late_read = sim.scan() + 1;
  sim.Step();
  EXPECT_EQ(sim.page(0).where, Where::kResident);
  EXPECT_EQ(sim.page(0).level, raised - 1);
}

// 10'000 pages: 500 read at random-ish periods of 20-200 s, 500 written
// every 10 s, the rest never touched. The read pages learn their levels over
// the first hours (one mistake per level: the top level is 2^10 cold ages);
// the global threshold stays settled throughout, since that learning is
// not its business, and by the tenth hour refaults are within the promotion
// objective.
TEST(RefaultMemoryTest, StationaryTraceSettlesThresholdAndRefaultRate) {
  auto period = [](size_t page) { return 20 + (page * 7919) % 181; };
  PageSim sim(10'000, kColdAgeMs, [&](size_t page, uint64_t scan) {
    if (page < 500) return scan % period(page) == 0 ? Access::kRead : Access::kNone;
    if (page < 1000) return scan % 10 == 0 ? Access::kWrite : Access::kNone;
    return Access::kNone;
  });
  std::vector<uint32_t> thresholds;
  for (uint64_t s = 0; s < 9 * kHour; ++s) {
    thresholds.push_back(sim.Step().cold_age_scans);
  }
  uint64_t refaults_before = sim.refaults();
  for (uint64_t s = 0; s < kHour; ++s) thresholds.push_back(sim.Step().cold_age_scans);
  auto [lo, hi] = std::minmax_element(thresholds.begin() + kHour, thresholds.end());
  EXPECT_LE(*hi - *lo, 2u) << "between " << *lo << " and " << *hi;
  EXPECT_GT(sim.refaults(), 500u) << "the read pages must have been taken out";
  // Resident: the 1000 hot pages. 0.2% a minute of them: 2 a minute.
  double per_minute = (sim.refaults() - refaults_before) / 60.0;
  EXPECT_LE(per_minute, 2.0);
  // And the cold 9000 are out.
  int out = 0;
  for (size_t i = 1000; i < 10'000; ++i) out += sim.page(i).where != Where::kResident;
  EXPECT_EQ(out, 9000);
}

// The hot set moves: the old one goes cold and is taken out within a few
// minutes; the new one (compressed while cold) refaults and then stays.
TEST(RefaultMemoryTest, PhaseChangeIsFollowedWithinAFewMinutes) {
  uint64_t change = 30 * 60;
  PageSim sim(2'000, kColdAgeMs, [&](size_t page, uint64_t scan) {
    bool hot = scan < change ? page < 1000 : page >= 1000;
    return hot && (scan + page) % 5 == 0 ? Access::kWrite : Access::kNone;
  });
  sim.Run(change - 1);  // scan `change` is the first of the new phase
  for (size_t i = 1000; i < 2000; ++i) ASSERT_EQ(sim.page(i).where, Where::kCompressed);
  sim.Run(5 * 60);
  int old_out = 0;
  int new_in = 0;
  for (size_t i = 0; i < 1000; ++i) old_out += sim.page(i).where == Where::kCompressed;
  for (size_t i = 1000; i < 2000; ++i) new_in += sim.page(i).where == Where::kResident;
  EXPECT_EQ(old_out, 1000);
  EXPECT_EQ(new_in, 1000);
}

}  // namespace
}  // namespace coldheap::policy
