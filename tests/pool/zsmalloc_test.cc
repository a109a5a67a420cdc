#include "pool/zsmalloc.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pool/counting_page_source.h"

namespace coldheap::pool {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct DestroyZsmalloc {
  void operator()(Zpool* pool) const { ZsmallocDriver().Destroy(pool); }
};
using PoolPtr = std::unique_ptr<Zpool, DestroyZsmalloc>;

PoolPtr MakePool(PageSource& source, const ZpoolOps& ops = {}) {
  absl::StatusOr<Zpool*> pool = ZsmallocDriver().Create("test", ops, source);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return PoolPtr(pool.ok() ? *pool : nullptr);
}

// Bytes that differ per object (seed) and per offset.
uint8_t PatternByte(uint32_t seed, size_t offset) {
  return static_cast<uint8_t>(seed * 2654435761u + offset * 131 +
                              (offset >> 8));
}

void Fill(void* data, size_t size, uint32_t seed) {
  auto* bytes = static_cast<uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) bytes[i] = PatternByte(seed, i);
}

bool Matches(const void* data, size_t size, uint32_t seed) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    if (bytes[i] != PatternByte(seed, i)) return false;
  }
  return true;
}

// An object the test stored: its handle and how to check its bytes.
struct Stored {
  Handle handle;
  size_t size;
  uint32_t seed;
};

Stored Store(Zpool& pool, size_t size, uint32_t seed) {
  absl::StatusOr<Handle> handle = pool.Malloc(size);
  EXPECT_TRUE(handle.ok()) << handle.status();
  if (!handle.ok()) return {kNoHandle, size, seed};
  MappedObject object(pool, *handle, MapMode::kWriteOnly);
  Fill(object.data(), size, seed);
  return {*handle, size, seed};
}

bool Holds(Zpool& pool, const Stored& s) {
  MappedObject object(pool, s.handle, MapMode::kReadOnly);
  return Matches(object.data(), s.size, s.seed);
}

uintptr_t AddressOf(Zpool& pool, Handle handle) {
  MappedObject object(pool, handle, MapMode::kReadOnly);
  return reinterpret_cast<uintptr_t>(object.data());
}

class ZsmallocTest : public ::testing::Test {
 protected:
  void TearDown() override {
    pool_.reset();
    EXPECT_EQ(source_.held_bytes(), 0u) << "the pool leaked pages";
  }

  // TotalSize() must be exactly what the pool holds from its source.
  void ExpectExactTotalSize() {
    EXPECT_EQ(pool_->TotalSize(), source_.held_bytes());
  }

  CountingPageSource source_;
  PoolPtr pool_ = MakePool(source_);
};

TEST_F(ZsmallocTest, NewPoolHoldsOnlyAFewPages) {
  EXPECT_EQ(pool_->type(), "zsmalloc");
  EXPECT_EQ(pool_->name(), "test");
  EXPECT_TRUE(pool_->MallocSupportMovable());
  ExpectExactTotalSize();
  EXPECT_LE(pool_->TotalSize(), 8 * kPageSize);
}

TEST_F(ZsmallocTest, MallocMapWriteReadBack) {
  const Stored s = Store(*pool_, 1234, 7);
  ASSERT_NE(s.handle, kNoHandle);
  EXPECT_TRUE(Holds(*pool_, s));
  {
    MappedObject object(*pool_, s.handle, MapMode::kReadWrite);
    Fill(object.data(), s.size, 8);
  }
  EXPECT_TRUE(Holds(*pool_, {s.handle, s.size, 8}));
  ExpectExactTotalSize();
  pool_->Free(s.handle);
  ExpectExactTotalSize();
}

TEST_F(ZsmallocTest, EverySizeFromOneByteToAPageRoundTripsItsBytes) {
  const uint64_t empty = pool_->TotalSize();
  std::vector<Stored> stored;
  for (size_t size = 1; size <= kMaxObjectSize; ++size) {
    stored.push_back(Store(*pool_, size, static_cast<uint32_t>(size)));
    ExpectExactTotalSize();
  }
  for (const Stored& s : stored) EXPECT_TRUE(Holds(*pool_, s)) << s.size;
  for (const Stored& s : stored) {
    pool_->Free(s.handle);
    ExpectExactTotalSize();
  }
  pool_->Compact();
  EXPECT_EQ(pool_->TotalSize(), empty);
}

TEST_F(ZsmallocTest, StoreAndFreeAtAZspageBoundaryDoesNotRemapPages) {
  const uint64_t fixed = pool_->TotalSize();
  Stored s = Store(*pool_, 3000, 1);
  const uint64_t one_object = pool_->TotalSize();
  for (int i = 0; i < 10; ++i) {
    pool_->Free(s.handle);
    EXPECT_EQ(pool_->TotalSize(), one_object) << "the zspage is kept";
    s = Store(*pool_, 3000, i);
    EXPECT_EQ(pool_->TotalSize(), one_object) << "and reused";
  }
  pool_->Free(s.handle);
  EXPECT_GT(pool_->Compact(), 0u);
  EXPECT_EQ(pool_->TotalSize(), fixed);
  ExpectExactTotalSize();
}

TEST_F(ZsmallocTest, ObjectsStraddlingPageBoundariesReadBackWhole) {
  constexpr size_t kSize = 3000;
  const ZsmallocClassStats stats = GetZsmallocClassStats(*pool_, kSize);
  ASSERT_GT(stats.pages_per_zspage, 1);
  std::vector<Stored> stored;
  int straddling = 0;
  for (int i = 0; i < stats.objects_per_zspage; ++i) {
    stored.push_back(Store(*pool_, kSize, 100 + i));
    const uintptr_t address = AddressOf(*pool_, stored.back().handle);
    if (address / kPageSize != (address + kSize - 1) / kPageSize) ++straddling;
  }
  EXPECT_GT(straddling, 0);
  EXPECT_EQ(GetZsmallocClassStats(*pool_, kSize).zspages, 1u);
  for (const Stored& s : stored) EXPECT_TRUE(Holds(*pool_, s));
  for (const Stored& s : stored) pool_->Free(s.handle);
}

TEST_F(ZsmallocTest, SizesWithTheSameGeometryShareAClass) {
  std::set<size_t> classes;
  ZsmallocClassStats previous;
  bool merged_beyond_rounding = false;
  for (size_t size = 1; size <= kMaxObjectSize; ++size) {
    const ZsmallocClassStats s = GetZsmallocClassStats(*pool_, size);
    ASSERT_GE(s.object_size, size);
    ASSERT_EQ(s.object_size % 16, 0u);
    ASSERT_GE(s.pages_per_zspage, 1);
    ASSERT_LE(s.pages_per_zspage, 8);
    ASSERT_LE(s.objects_per_zspage * s.object_size,
              s.pages_per_zspage * kPageSize);
    if (s.object_size >= size + 16) merged_beyond_rounding = true;
    classes.insert(s.object_size);
    if (previous.object_size != 0 && s.object_size != previous.object_size) {
      // Neighbouring classes exist only because their geometry differs.
      EXPECT_NE(std::make_pair(s.pages_per_zspage, s.objects_per_zspage),
                std::make_pair(previous.pages_per_zspage,
                               previous.objects_per_zspage))
          << s.object_size;
    }
    previous = s;
  }
  EXPECT_TRUE(merged_beyond_rounding);
  EXPECT_LT(classes.size(), 256u);
  EXPECT_GT(classes.size(), 64u);
  EXPECT_EQ(GetZsmallocClassStats(*pool_, 4096).object_size, 4096u);

  // Two sizes of one merged class are counted in the same class.
  size_t small = 0;
  for (size_t size = 16; size < kMaxObjectSize && small == 0; size += 16) {
    if (GetZsmallocClassStats(*pool_, size).object_size > size) small = size;
  }
  ASSERT_NE(small, 0u);
  const size_t large = GetZsmallocClassStats(*pool_, small).object_size;
  const Stored a = Store(*pool_, small, 1);
  const Stored b = Store(*pool_, large, 2);
  const ZsmallocClassStats stats = GetZsmallocClassStats(*pool_, small);
  EXPECT_EQ(stats.objects_used, 2u);
  EXPECT_EQ(stats.zspages, 1u);
  pool_->Free(a.handle);
  pool_->Free(b.handle);
  EXPECT_EQ(GetZsmallocClassStats(*pool_, small).objects_used, 0u);
  pool_->Compact();
  EXPECT_EQ(GetZsmallocClassStats(*pool_, small).zspages, 0u);
}

// The dense tier keeps a recompressed copy only if StoredSize drops; it must
// be the class that Malloc really uses.
TEST_F(ZsmallocTest, StoredSizeIsTheClassAnObjectLandsIn) {
  size_t previous = 0;
  for (size_t size = 1; size <= kMaxObjectSize; ++size) {
    const size_t stored = pool_->StoredSize(size);
    ASSERT_EQ(stored, GetZsmallocClassStats(*pool_, size).object_size) << size;
    ASSERT_GE(stored, previous) << size;
    previous = stored;
  }
}

TEST_F(ZsmallocTest, TotalSizeEqualsHeldBytesAfterEveryStep) {
  std::mt19937 rng(42);
  std::vector<Stored> stored;
  for (int step = 0; step < 5000; ++step) {
    const int action = rng() % 10;
    if (action < 6 || stored.empty()) {
      stored.push_back(Store(*pool_, 1 + rng() % kMaxObjectSize, step));
    } else if (action < 9) {
      const size_t i = rng() % stored.size();
      pool_->Free(stored[i].handle);
      stored[i] = stored.back();
      stored.pop_back();
    } else {
      pool_->Compact();
    }
    ExpectExactTotalSize();
  }
  for (const Stored& s : stored) EXPECT_TRUE(Holds(*pool_, s));
  for (const Stored& s : stored) pool_->Free(s.handle);
  ExpectExactTotalSize();
}

TEST_F(ZsmallocTest, EmptiedPoolHoldsOnlyItsFixedOverhead) {
  const uint64_t fixed = pool_->TotalSize();
  std::mt19937 rng(1);
  std::vector<Stored> stored;
  for (int i = 0; i < 3000; ++i) {
    stored.push_back(Store(*pool_, 1 + rng() % kMaxObjectSize, i));
  }
  EXPECT_GT(pool_->TotalSize(), fixed);
  std::shuffle(stored.begin(), stored.end(), rng);
  for (const Stored& s : stored) pool_->Free(s.handle);
  pool_->Compact();
  EXPECT_EQ(pool_->TotalSize(), fixed);
  ExpectExactTotalSize();
}

TEST_F(ZsmallocTest, CompactFreesPagesAndKeepsEveryObjectsBytes) {
  std::mt19937 rng(3);
  std::vector<Stored> stored;
  for (int i = 0; i < 4000; ++i) {
    stored.push_back(Store(*pool_, 500 + rng() % 3000, i));
  }
  std::shuffle(stored.begin(), stored.end(), rng);
  for (size_t i = stored.size() / 2; i < stored.size(); ++i) {
    pool_->Free(stored[i].handle);
  }
  stored.resize(stored.size() / 2);

  const uint64_t before = pool_->TotalSize();
  const size_t freed = pool_->Compact();
  EXPECT_GT(freed, 0u);
  EXPECT_EQ(before - pool_->TotalSize(), freed * kPageSize);
  ExpectExactTotalSize();
  EXPECT_EQ(pool_->Compact(), 0u) << "a second pass finds nothing to do";
  for (const Stored& s : stored) EXPECT_TRUE(Holds(*pool_, s));
  for (const Stored& s : stored) pool_->Free(s.handle);
}

// Two half-full zspages of a class holding two objects per zspage.
class TwoHalfFullZspages : public ZsmallocTest {
 protected:
  void SetUp() override {
    const ZsmallocClassStats stats = GetZsmallocClassStats(*pool_, kSize);
    ASSERT_EQ(stats.objects_per_zspage, 2);
    Stored a = Store(*pool_, kSize, 1);
    const Stored b = Store(*pool_, kSize, 2);
    const Stored c = Store(*pool_, kSize, 3);
    Stored d = Store(*pool_, kSize, 4);
    pool_->Free(b.handle);
    pool_->Free(c.handle);
    ASSERT_EQ(GetZsmallocClassStats(*pool_, kSize).zspages, 2u);
    first_ = a;
    second_ = d;
  }
  void TearDown() override {
    if (first_.handle != kNoHandle) pool_->Free(first_.handle);
    if (second_.handle != kNoHandle) pool_->Free(second_.handle);
    ZsmallocTest::TearDown();
  }

  static constexpr size_t kSize = 2000;
  Stored first_{};
  Stored second_{};
};

TEST_F(TwoHalfFullZspages, HandleFindsItsObjectAfterCompactionMovesIt) {
  const uintptr_t first_at = AddressOf(*pool_, first_.handle);
  const uintptr_t second_at = AddressOf(*pool_, second_.handle);
  const size_t zspage_pages =
      GetZsmallocClassStats(*pool_, kSize).pages_per_zspage;
  EXPECT_EQ(pool_->Compact(), zspage_pages);
  EXPECT_EQ(GetZsmallocClassStats(*pool_, kSize).zspages, 1u);
  EXPECT_TRUE(AddressOf(*pool_, first_.handle) != first_at ||
              AddressOf(*pool_, second_.handle) != second_at);
  EXPECT_TRUE(Holds(*pool_, first_));
  EXPECT_TRUE(Holds(*pool_, second_));
}

TEST_F(TwoHalfFullZspages, MappedObjectStaysPutUntilUnmapped) {
  void* first = pool_->Map(first_.handle, MapMode::kReadWrite);
  pool_->Map(second_.handle, MapMode::kReadWrite);
  EXPECT_EQ(pool_->Compact(), 0u) << "both zspages are pinned";
  pool_->Unmap(second_.handle);
  EXPECT_GT(pool_->Compact(), 0u);
  EXPECT_EQ(pool_->Map(first_.handle, MapMode::kReadOnly), first);
  pool_->Unmap(first_.handle);
  // The pinned object did not move: writing through the old view still lands.
  Fill(first, kSize, 11);
  first_.seed = 11;
  pool_->Unmap(first_.handle);
  EXPECT_TRUE(Holds(*pool_, first_));
  EXPECT_TRUE(Holds(*pool_, second_));
}

TEST_F(ZsmallocTest, CompactionRacingMapAndUnmapNeverShowsTornBytes) {
  std::mt19937 rng(5);
  std::vector<Stored> readable;
  std::vector<Stored> churn;
  for (int i = 0; i < 3000; ++i) {
    const Stored s = Store(*pool_, 800 + rng() % 2400, i);
    (i % 2 == 0 ? readable : churn).push_back(s);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 local(100 + t);
      while (!stop.load()) {
        const Stored& s = readable[local() % readable.size()];
        const MapMode mode =
            local() % 2 ? MapMode::kReadOnly : MapMode::kReadWrite;
        MappedObject object(*pool_, s.handle, mode);
        if (!Matches(object.data(), s.size, s.seed)) ++torn;
      }
    });
  }
  for (int round = 0; round < 30; ++round) {
    std::shuffle(churn.begin(), churn.end(), rng);
    for (size_t i = churn.size() / 2; i < churn.size(); ++i) {
      pool_->Free(churn[i].handle);
      churn[i] = Store(*pool_, 800 + rng() % 2400, 10000 * round + i);
    }
    for (size_t i = 0; i < churn.size() / 3; ++i) pool_->Free(churn[i].handle);
    churn.erase(churn.begin(), churn.begin() + churn.size() / 3);
    pool_->Compact();
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  for (const Stored& s : readable) EXPECT_TRUE(Holds(*pool_, s));
  for (const Stored& s : churn) EXPECT_TRUE(Holds(*pool_, s));
  for (const Stored& s : readable) pool_->Free(s.handle);
  for (const Stored& s : churn) pool_->Free(s.handle);
  ExpectExactTotalSize();
}

TEST_F(ZsmallocTest, ThreadsStoringAndFreeingConcurrentlyKeepTheirBytes) {
  const uint64_t fixed = pool_->TotalSize();
  constexpr int kThreads = 4;
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<Stored> mine;
      for (int i = 0; i < 4000; ++i) {
        if (mine.empty() || rng() % 3 != 0) {
          mine.push_back(
              Store(*pool_, 1 + rng() % kMaxObjectSize, t * 1000000 + i));
        } else {
          const size_t k = rng() % mine.size();
          if (!Holds(*pool_, mine[k])) ++corrupt;
          pool_->Free(mine[k].handle);
          mine[k] = mine.back();
          mine.pop_back();
        }
        if (t == 0 && i % 500 == 0) pool_->Compact();
      }
      for (const Stored& s : mine) {
        if (!Holds(*pool_, s)) ++corrupt;
        pool_->Free(s.handle);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(corrupt.load(), 0);
  pool_->Compact();
  EXPECT_EQ(pool_->TotalSize(), fixed);
  ExpectExactTotalSize();
}

// Records evictions; saves (returns true) unless told to keep objects.
struct EvictLog {
  bool save = true;
  std::vector<Handle> evicted;
  std::vector<Stored> expected;  // bytes the callback must see
  int wrong_bytes = 0;

  static bool Evict(void* context, Zpool& pool, Handle handle) {
    auto* log = static_cast<EvictLog*>(context);
    log->evicted.push_back(handle);
    for (const Stored& s : log->expected) {
      if (s.handle == handle && !Holds(pool, s)) ++log->wrong_bytes;
    }
    return log->save;
  }
  ZpoolOps ops() { return ZpoolOps{&EvictLog::Evict, this}; }
};

class ZsmallocShrinkTest : public ::testing::Test {
 protected:
  void TearDown() override {
    pool_.reset();
    EXPECT_EQ(source_.held_bytes(), 0u);
  }
  Stored StoreExpected(size_t size, uint32_t seed) {
    log_.expected.push_back(Store(*pool_, size, seed));
    return log_.expected.back();
  }

  CountingPageSource source_;
  EvictLog log_;
  PoolPtr pool_ = MakePool(source_, log_.ops());
};

TEST_F(ZsmallocShrinkTest, EvictsLeastRecentlyStoredZspageFirst) {
  // Sizes whose zspages hold several objects, in three classes.
  const Stored a = StoreExpected(3000, 1);
  const Stored b = StoreExpected(100, 2);
  const Stored c = StoreExpected(1500, 3);
  const Stored d = StoreExpected(100, 4);  // b's zspage is now the newest
  ASSERT_EQ(GetZsmallocClassStats(*pool_, 100).zspages, 1u);

  const auto shrink_one = [&] {
    const uint64_t before = pool_->TotalSize();
    absl::StatusOr<size_t> freed = pool_->Shrink(1);
    EXPECT_TRUE(freed.ok()) << freed.status();
    EXPECT_GE(*freed, 1u);
    EXPECT_EQ(before - pool_->TotalSize(), *freed * kPageSize);
    EXPECT_EQ(pool_->TotalSize(), source_.held_bytes());
  };
  shrink_one();
  EXPECT_THAT(log_.evicted, ElementsAre(a.handle));
  shrink_one();
  EXPECT_THAT(log_.evicted, ElementsAre(a.handle, c.handle));
  shrink_one();
  EXPECT_THAT(log_.evicted,
              ElementsAre(a.handle, c.handle, b.handle, d.handle));
  EXPECT_EQ(log_.wrong_bytes, 0) << "the callback maps and reads each object";
  EXPECT_EQ(*pool_->Shrink(1), 0u) << "nothing left";
}

TEST_F(ZsmallocShrinkTest, ShrinkGivesBackAtLeastTheAskedPages) {
  std::mt19937 rng(9);
  for (int i = 0; i < 500; ++i) StoreExpected(1000 + rng() % 2000, i);
  const uint64_t before = pool_->TotalSize();
  absl::StatusOr<size_t> freed = pool_->Shrink(20);
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_GE(*freed, 20u);
  EXPECT_EQ(before - pool_->TotalSize(), *freed * kPageSize);
  EXPECT_EQ(log_.wrong_bytes, 0);
  const std::set<Handle> evicted(log_.evicted.begin(), log_.evicted.end());
  for (const Stored& s : log_.expected) {
    if (evicted.count(s.handle) == 0) {
      EXPECT_TRUE(Holds(*pool_, s));
      pool_->Free(s.handle);
    }
  }
}

TEST_F(ZsmallocShrinkTest, EvictReturningFalseKeepsTheObject) {
  log_.save = false;
  const Stored a = StoreExpected(2000, 1);
  const Stored b = StoreExpected(2000, 2);
  const uint64_t before = pool_->TotalSize();
  absl::StatusOr<size_t> freed = pool_->Shrink(1);
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_EQ(*freed, 0u);
  EXPECT_THAT(log_.evicted, ElementsAre(a.handle, b.handle))
      << "each object is offered once";
  EXPECT_EQ(pool_->TotalSize(), before);
  EXPECT_TRUE(Holds(*pool_, a));
  EXPECT_TRUE(Holds(*pool_, b));
  pool_->Free(a.handle);
  pool_->Free(b.handle);
}

TEST_F(ZsmallocTest, ShrinkWithoutEvictCallbackFails) {
  const Stored s = Store(*pool_, 100, 1);
  absl::StatusOr<size_t> freed = pool_->Shrink(1);
  EXPECT_EQ(freed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(freed.status().message(), HasSubstr("evict"));
  EXPECT_TRUE(Holds(*pool_, s));
  pool_->Free(s.handle);
}

TEST_F(ZsmallocTest, MallocRejectsSizesOutsideOneByteToAPage) {
  for (size_t size : {size_t{0}, kMaxObjectSize + 1, size_t{1} << 40}) {
    absl::StatusOr<Handle> handle = pool_->Malloc(size);
    EXPECT_EQ(handle.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(handle.status().message(), HasSubstr("1..4096"));
  }
  ExpectExactTotalSize();
}

TEST_F(ZsmallocTest, MallocReportsExhaustedPageSourceAndHoldsNothingMore) {
  const uint64_t held = source_.held_bytes();
  // Room for the handle table but not for a zspage of this class.
  ASSERT_GT(GetZsmallocClassStats(*pool_, 100).pages_per_zspage, 1);
  for (uint64_t spare : {0, 1, 2}) {
    source_.set_limit_pages(held / kPageSize + spare);
    absl::StatusOr<Handle> handle = pool_->Malloc(100);
    EXPECT_EQ(handle.status().code(), absl::StatusCode::kResourceExhausted)
        << spare;
    EXPECT_EQ(source_.held_bytes(), held);
    ExpectExactTotalSize();
  }
  source_.set_limit_pages(UINT64_MAX);
  const Stored s = Store(*pool_, 100, 1);
  EXPECT_TRUE(Holds(*pool_, s));
  pool_->Free(s.handle);
}

TEST(ZsmallocCreateTest, DestroyGivesBackEveryPageWithObjectsStillStored) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  for (int i = 0; i < 2000; ++i) Store(*pool, 1 + i * 2 % kMaxObjectSize, i);
  EXPECT_GT(source.held_bytes(), 100 * kPageSize);
  pool.reset();
  EXPECT_EQ(source.held_bytes(), 0u);
}

TEST(ZsmallocCreateTest, ReportsExhaustedPageSource) {
  CountingPageSource source;
  source.set_limit_pages(1);
  absl::StatusOr<Zpool*> pool = ZsmallocDriver().Create("small", {}, source);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(source.held_bytes(), 0u);
}

#ifndef NDEBUG
TEST_F(ZsmallocTest, DoubleFreeDiesInDebugBuilds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Handle handle = *pool_->Malloc(100);
  pool_->Free(handle);
  EXPECT_DEATH(pool_->Free(handle), "double free");
}

TEST_F(ZsmallocTest, HandleOfAnotherPoolDiesInDebugBuilds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  PoolPtr other = MakePool(source_);
  const Handle handle = *other->Malloc(100);
  EXPECT_DEATH(pool_->Map(handle, MapMode::kReadOnly), "not belong");
  EXPECT_DEATH(pool_->Free(handle), "not belong");
  other->Free(handle);
}

TEST_F(ZsmallocTest, GarbageHandleDiesInDebugBuilds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Handle real = *pool_->Malloc(100);
  EXPECT_DEATH(pool_->Free(real + 1), "not stored");
  EXPECT_DEATH(pool_->Free(real + (Handle{1} << 30)), "not stored");
  EXPECT_DEATH(pool_->Free(12345), "");
  EXPECT_DEATH(pool_->Unmap(real), "not mapped");
  pool_->Free(real);
}
#endif  // NDEBUG

// Compressed heap pages are mostly 1-3 KiB. Rounding, zspage tails and
// metadata must cost at most 5% full, 10% after a random half is freed and
// the pool compacted.
TEST_F(ZsmallocTest, PacksRealisticSizesWithinFivePercent) {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<size_t> size_of(1000, 3000);
  std::vector<std::pair<Handle, size_t>> stored;
  uint64_t bytes = 0;
  for (int i = 0; i < 20000; ++i) {
    const size_t size = size_of(rng);
    stored.emplace_back(*pool_->Malloc(size), size);
    bytes += size;
  }
  const double full = static_cast<double>(pool_->TotalSize()) / bytes;
  std::shuffle(stored.begin(), stored.end(), rng);
  for (size_t i = stored.size() / 2; i < stored.size(); ++i) {
    pool_->Free(stored[i].first);
    bytes -= stored[i].second;
  }
  stored.resize(stored.size() / 2);
  pool_->Compact();
  const double compacted = static_cast<double>(pool_->TotalSize()) / bytes;
  std::printf(
      "zsmalloc packing, 20000 objects of 1000..3000 bytes: %.4f; "
      "after freeing half and compacting: %.4f\n",
      full, compacted);
  RecordProperty("packing_full", std::to_string(full));
  RecordProperty("packing_compacted", std::to_string(compacted));
  EXPECT_LE(full, 1.05);
  EXPECT_LE(compacted, 1.10);
  for (const auto& [handle, size] : stored) pool_->Free(handle);
}

// What the shim stores: LZ4'd heap pages, mostly 1-3 KiB, some of every size
// down to 16 bytes (nearly empty pages).
size_t ShimObjectSize(std::mt19937& rng) {
  if (rng() % 8 == 0) return 16 + rng() % (3072 - 16 + 1);
  return 1000 + rng() % 2001;
}

// The shim's pattern: heavy store/free churn while the live set swings
// between 40000 objects and 3000 (most compressed pages faulted back), a
// Compact() per scan, fault handlers pinning objects meanwhile. After every
// Compact the pool holds at most 1.25x the live bytes, plus its fixed cost
// (the pool object itself: the TotalSize() of an empty pool, 4 pages).
TEST_F(ZsmallocTest, ChurnKeepsPoolWithinQuarterOfItsContents) {
  const uint64_t fixed = pool_->TotalSize();
  std::mt19937 rng(2025);
  std::vector<Stored> live;
  uint64_t bytes = 0;
  auto store = [&] {
    live.push_back(Store(*pool_, ShimObjectSize(rng), rng()));
    bytes += live.back().size;
  };
  // Objects the "fault handlers" keep mapping; never freed, so they can be
  // read from another thread without a lock.
  std::vector<Stored> pinned_often;
  for (int i = 0; i < 300; ++i) {
    pinned_often.push_back(Store(*pool_, ShimObjectSize(rng), i));
    bytes += pinned_often.back().size;
  }
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::thread handler([&] {
    std::mt19937 local(7);
    while (!stop.load()) {
      const Stored& s = pinned_often[local() % pinned_often.size()];
      MappedObject object(*pool_, s.handle, MapMode::kReadOnly);
      if (!Matches(object.data(), s.size, s.seed)) ++torn;
    }
  });
  for (int i = 0; i < 40000; ++i) store();
  double worst = 0;
  double worst_live_mb = 0;
  for (const size_t target : {3000, 40000, 3000, 20000, 4000, 30000, 3000}) {
    for (int scan = 0; scan < 100; ++scan) {
      for (int op = 0; op < 1000; ++op) {
        // Both stores and frees every scan; the mix drifts to the target.
        const bool shrink = live.size() > target ? rng() % 4 != 0
                                                 : rng() % 4 == 0;
        if (!shrink) {
          store();
          continue;
        }
        const size_t k = rng() % live.size();
        pool_->Free(live[k].handle);
        bytes -= live[k].size;
        live[k] = live.back();
        live.pop_back();
      }
      pool_->Compact();
      const double ratio =
          static_cast<double>(pool_->TotalSize() - fixed) / bytes;
      if (ratio > worst) {
        worst = ratio;
        worst_live_mb = bytes / 1e6;
      }
    }
  }
  stop = true;
  handler.join();
  std::printf("zsmalloc under churn: worst TotalSize/live %.3f (at %.2f MB)\n",
              worst, worst_live_mb);
  RecordProperty("churn_worst_ratio", std::to_string(worst));
  EXPECT_LE(worst, 1.25) << "with " << worst_live_mb << " MB live";
  EXPECT_EQ(torn.load(), 0);
  for (const Stored& s : live) EXPECT_TRUE(Holds(*pool_, s));
  for (const Stored& s : live) pool_->Free(s.handle);
  for (const Stored& s : pinned_often) pool_->Free(s.handle);
  pool_->Compact();
  EXPECT_EQ(pool_->TotalSize(), fixed);
}

}  // namespace
}  // namespace coldheap::pool
