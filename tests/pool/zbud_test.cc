#include "pool/zbud.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pool/zpool.h"
#include "tests/pool/counting_page_source.h"

namespace coldheap::pool {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct DestroyWithZbud {
  void operator()(Zpool* pool) const { ZbudDriver().Destroy(pool); }
};
using PoolPtr = std::unique_ptr<Zpool, DestroyWithZbud>;

PoolPtr MakePool(PageSource& source, const ZpoolOps& ops = {}) {
  absl::StatusOr<Zpool*> pool = ZbudDriver().Create("test", ops, source);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return PoolPtr(pool.ok() ? *pool : nullptr);
}

Handle MustMalloc(Zpool& pool, size_t size) {
  absl::StatusOr<Handle> handle = pool.Malloc(size);
  EXPECT_TRUE(handle.ok()) << handle.status();
  return handle.ok() ? *handle : kNoHandle;
}

uint8_t PatternByte(uint32_t seed, size_t i) {
  return static_cast<uint8_t>(seed * 131 + i * 7 + (i >> 8));
}

void Fill(Zpool& pool, Handle handle, size_t size, uint32_t seed) {
  MappedObject object(pool, handle, MapMode::kWriteOnly);
  auto* bytes = static_cast<uint8_t*>(object.data());
  for (size_t i = 0; i < size; ++i) bytes[i] = PatternByte(seed, i);
}

bool Holds(Zpool& pool, Handle handle, size_t size, uint32_t seed) {
  MappedObject object(pool, handle, MapMode::kReadOnly);
  const auto* bytes = static_cast<const uint8_t*>(object.data());
  for (size_t i = 0; i < size; ++i) {
    if (bytes[i] != PatternByte(seed, i)) return false;
  }
  return true;
}

::testing::AssertionResult SizeIsExact(const Zpool& pool,
                                       const CountingPageSource& source) {
  if (pool.TotalSize() == source.held_bytes()) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "TotalSize() " << pool.TotalSize() << " != held_bytes() "
         << source.held_bytes();
}

uintptr_t Address(Zpool& pool, Handle handle) {
  MappedObject object(pool, handle, MapMode::kReadOnly);
  return reinterpret_cast<uintptr_t>(object.data());
}

TEST(ZbudTest, DriverAndPoolDescribeThemselves) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  EXPECT_EQ(ZbudDriver().type(), "zbud");
  EXPECT_EQ(&ZbudDriver(), &ZbudDriver());
  EXPECT_EQ(pool->type(), "zbud");
  EXPECT_EQ(pool->name(), "test");
  EXPECT_FALSE(pool->MallocSupportMovable());
  EXPECT_TRUE(pool->SleepMapped());
  EXPECT_EQ(pool->Compact(), 0u);
}

TEST(ZbudTest, AllMemoryComesFromAndReturnsToThePageSource) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  EXPECT_GT(source.held_bytes(), 0u);  // the pool object itself
  EXPECT_TRUE(SizeIsExact(*pool, source));
  for (int i = 0; i < 10; ++i) MustMalloc(*pool, 100 + 400 * i);
  EXPECT_TRUE(SizeIsExact(*pool, source));
  pool.reset();
  EXPECT_EQ(source.held_bytes(), 0u);
}

TEST(ZbudTest, RoundTripKeepsBytesForEverySize) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  std::vector<size_t> sizes = {1,    2,    63,   64,   65,   127,  128,
                               1000, 2047, 2048, 2049, 4031, 4032, 4033,
                               4095, 4096};
  for (size_t size = 3; size <= kMaxObjectSize; size += 37) {
    sizes.push_back(size);
  }
  // All live at once, so an object overlapping its buddy would show.
  std::vector<Handle> handles;
  for (size_t i = 0; i < sizes.size(); ++i) {
    handles.push_back(MustMalloc(*pool, sizes[i]));
    Fill(*pool, handles[i], sizes[i], i);
    ASSERT_TRUE(SizeIsExact(*pool, source));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_TRUE(Holds(*pool, handles[i], sizes[i], i)) << "size " << sizes[i];
  }
  for (Handle handle : handles) {
    pool->Free(handle);
    ASSERT_TRUE(SizeIsExact(*pool, source));
  }
}

TEST(ZbudTest, TwoBuddiesShareOnePageFromBothEnds) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const uint64_t empty = pool->TotalSize();
  const Handle first = MustMalloc(*pool, 1000);
  // One data page plus the first page of the header table.
  EXPECT_EQ(pool->TotalSize(), empty + 2 * kPageSize);
  const Handle last = MustMalloc(*pool, 1000);
  EXPECT_EQ(pool->TotalSize(), empty + 2 * kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));

  const uintptr_t page = Address(*pool, first);
  EXPECT_EQ(page % kPageSize, 0u);
  EXPECT_EQ(Address(*pool, last), page + kPageSize - 1024);  // 16 chunks

  Fill(*pool, first, 1000, 1);
  Fill(*pool, last, 1000, 2);
  EXPECT_TRUE(Holds(*pool, first, 1000, 1));
  EXPECT_TRUE(Holds(*pool, last, 1000, 2));

  MustMalloc(*pool, 1000);  // the page is buddied: a third needs a new one
  EXPECT_EQ(pool->TotalSize(), empty + 3 * kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

// Two objects share a page exactly when their StoredSizes fit in it: what
// the dense tier's size rule relies on.
TEST(ZbudTest, StoredSizeIsTheChunksAnObjectTakes) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  EXPECT_EQ(pool->StoredSize(1), 64u);
  EXPECT_EQ(pool->StoredSize(64), 64u);
  EXPECT_EQ(pool->StoredSize(65), 128u);
  EXPECT_EQ(pool->StoredSize(1000), 1024u);
  const uint64_t empty = pool->TotalSize();
  MustMalloc(*pool, 1000);
  MustMalloc(*pool, kPageSize - pool->StoredSize(1000));
  EXPECT_EQ(pool->TotalSize(), empty + 2 * kPageSize);  // one shared page
  MustMalloc(*pool, 1000);
  MustMalloc(*pool, kPageSize - pool->StoredSize(1000) + 1);
  EXPECT_EQ(pool->TotalSize(), empty + 4 * kPageSize);  // no longer fits
}

TEST(ZbudTest, BuddiesShareOnlyWhenTheirChunksFit) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  MustMalloc(*pool, 2049);  // 33 chunks: 31 left
  const uint64_t one_page = pool->TotalSize();
  MustMalloc(*pool, 2048);  // 32 chunks: does not fit, new page
  EXPECT_EQ(pool->TotalSize(), one_page + kPageSize);
  MustMalloc(*pool, 2048);  // fits exactly beside the previous one
  EXPECT_EQ(pool->TotalSize(), one_page + kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, MallocFillsTheTightestGapThatFits) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle roomy = MustMalloc(*pool, 1024);  // 16 chunks: 48 free
  const Handle snug = MustMalloc(*pool, 3200);   // 50 chunks: own page, 14 free
  const Handle filler = MustMalloc(*pool, 896);  // 14 chunks: fits both
  EXPECT_EQ(Address(*pool, filler) & ~(kPageSize - 1), Address(*pool, snug));
  EXPECT_NE(Address(*pool, filler) & ~(kPageSize - 1), Address(*pool, roomy));
}

TEST(ZbudTest, FullPageObjectTakesAPageOfItsOwn) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle a = MustMalloc(*pool, kMaxObjectSize);
  const uint64_t one_page = pool->TotalSize();
  const Handle b = MustMalloc(*pool, kMaxObjectSize);
  EXPECT_EQ(pool->TotalSize(), one_page + kPageSize);
  MustMalloc(*pool, 1);  // neither full page has room
  EXPECT_EQ(pool->TotalSize(), one_page + 2 * kPageSize);
  EXPECT_EQ(Address(*pool, a) % kPageSize, 0u);
  Fill(*pool, a, kMaxObjectSize, 3);
  Fill(*pool, b, kMaxObjectSize, 4);
  EXPECT_TRUE(Holds(*pool, a, kMaxObjectSize, 3));
  EXPECT_TRUE(Holds(*pool, b, kMaxObjectSize, 4));
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, FreeingBothBuddiesGivesThePageBack) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle first = MustMalloc(*pool, 700);
  const Handle last = MustMalloc(*pool, 900);
  const uint64_t with_page = pool->TotalSize();
  pool->Free(first);
  EXPECT_EQ(pool->TotalSize(), with_page);  // the last buddy still lives
  EXPECT_TRUE(SizeIsExact(*pool, source));
  pool->Free(last);
  EXPECT_EQ(pool->TotalSize(), with_page - kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, FreedBuddySlotIsReusedBeforeANewPage) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle first = MustMalloc(*pool, 500);
  const Handle last = MustMalloc(*pool, 500);
  Fill(*pool, last, 500, 9);
  const uint64_t with_page = pool->TotalSize();
  pool->Free(first);
  const Handle again = MustMalloc(*pool, 3000);  // fits beside `last`
  EXPECT_EQ(pool->TotalSize(), with_page);
  Fill(*pool, again, 3000, 10);
  EXPECT_TRUE(Holds(*pool, last, 500, 9));
  EXPECT_TRUE(Holds(*pool, again, 3000, 10));
}

TEST(ZbudTest, HeaderTableGrowsAndIsReused) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  constexpr int kObjects = 300;  // headers in blocks of 64, 128, 256
  std::vector<Handle> handles;
  for (int i = 0; i < kObjects; ++i) {
    handles.push_back(MustMalloc(*pool, kMaxObjectSize));
    Fill(*pool, handles[i], kMaxObjectSize, i);
  }
  for (int i = 0; i < kObjects; ++i) {
    EXPECT_TRUE(Holds(*pool, handles[i], kMaxObjectSize, i)) << i;
  }
  EXPECT_TRUE(SizeIsExact(*pool, source));
  for (Handle handle : handles) pool->Free(handle);
  const uint64_t drained = pool->TotalSize();
  for (int i = 0; i < kObjects; ++i) MustMalloc(*pool, kMaxObjectSize);
  EXPECT_EQ(pool->TotalSize(), drained + kObjects * kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

// Records what the evict callback saw and answers with `keep` for the
// handles it should refuse.
struct Evictor {
  Zpool* pool = nullptr;
  std::vector<Handle> evicted;
  std::vector<Handle> refused;
  std::unordered_map<Handle, size_t> sizes;  // bytes to verify
  std::unordered_map<Handle, bool> keep;
  int corrupt = 0;

  static bool Evict(void* context, Zpool& pool, Handle handle) {
    auto* self = static_cast<Evictor*>(context);
    auto size = self->sizes.find(handle);
    if (size != self->sizes.end() &&
        !Holds(pool, handle, size->second, static_cast<uint32_t>(handle))) {
      ++self->corrupt;
    }
    if (self->keep[handle]) {
      self->refused.push_back(handle);
      return false;
    }
    self->evicted.push_back(handle);
    return true;
  }

  ZpoolOps ops() { return ZpoolOps{&Evict, this}; }

  Handle Store(size_t size) {
    const Handle handle = MustMalloc(*pool, size);
    Fill(*pool, handle, size, static_cast<uint32_t>(handle));
    sizes[handle] = size;
    return handle;
  }
};

TEST(ZbudTest, ShrinkEvictsLeastRecentlyStoredPagesFirst) {
  CountingPageSource source;
  Evictor evictor;
  PoolPtr pool = MakePool(source, evictor.ops());
  evictor.pool = pool.get();
  const Handle a = evictor.Store(3000);  // 17 chunks free
  const Handle b = evictor.Store(3500);  // 9 chunks free
  const Handle c = evictor.Store(3500);
  const Handle d = evictor.Store(1000);  // only fits a's page: now newest
  const uint64_t full = pool->TotalSize();

  EXPECT_EQ(pool->Shrink(1).value(), 1u);
  EXPECT_THAT(evictor.evicted, ElementsAre(b));
  EXPECT_EQ(pool->TotalSize(), full - kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));

  EXPECT_EQ(pool->Shrink(2).value(), 2u);
  EXPECT_THAT(evictor.evicted, ElementsAre(b, c, a, d));
  EXPECT_EQ(pool->TotalSize(), full - 3 * kPageSize);
  EXPECT_TRUE(SizeIsExact(*pool, source));
  EXPECT_EQ(evictor.corrupt, 0);  // the callback could read every object
}

TEST(ZbudTest, ShrinkStopsWhenThePoolIsEmpty) {
  CountingPageSource source;
  Evictor evictor;
  PoolPtr pool = MakePool(source, evictor.ops());
  evictor.pool = pool.get();
  evictor.Store(3000);
  evictor.Store(3000);
  EXPECT_EQ(pool->Shrink(10).value(), 2u);
  EXPECT_EQ(pool->Shrink(10).value(), 0u);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, EvictCallbackReturningFalseKeepsTheObject) {
  CountingPageSource source;
  Evictor evictor;
  PoolPtr pool = MakePool(source, evictor.ops());
  evictor.pool = pool.get();
  const Handle kept = evictor.Store(2000);
  evictor.keep[kept] = true;
  const uint64_t full = pool->TotalSize();

  EXPECT_EQ(pool->Shrink(1).value(), 0u);
  EXPECT_THAT(evictor.refused, ElementsAre(kept));
  EXPECT_EQ(pool->TotalSize(), full);
  EXPECT_TRUE(Holds(*pool, kept, 2000, static_cast<uint32_t>(kept)));
  pool->Free(kept);  // still a live handle
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, ShrinkFreesTheEvictedBuddyAndKeepsTheRefusedOne) {
  CountingPageSource source;
  Evictor evictor;
  PoolPtr pool = MakePool(source, evictor.ops());
  evictor.pool = pool.get();
  const Handle first = evictor.Store(1000);
  const Handle last = evictor.Store(1000);
  evictor.keep[last] = true;
  const uint64_t full = pool->TotalSize();

  EXPECT_EQ(pool->Shrink(1).value(), 0u);
  EXPECT_THAT(evictor.evicted, ElementsAre(first));
  EXPECT_THAT(evictor.refused, ElementsAre(last));
  EXPECT_TRUE(Holds(*pool, last, 1000, static_cast<uint32_t>(last)));
  MustMalloc(*pool, 3000);  // goes into the slot the eviction freed
  EXPECT_EQ(pool->TotalSize(), full);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, ShrinkWithoutEvictCallbackFails) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  MustMalloc(*pool, 100);
  absl::StatusOr<size_t> freed = pool->Shrink(1);
  EXPECT_EQ(freed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(freed.status().message(), HasSubstr("evict"));
}

TEST(ZbudTest, MallocRejectsSizesOutsideOneToPageSize) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const uint64_t empty = pool->TotalSize();
  for (size_t size : {size_t{0}, kMaxObjectSize + 1, size_t{1} << 40}) {
    absl::StatusOr<Handle> handle = pool->Malloc(size);
    EXPECT_EQ(handle.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(handle.status().message(), HasSubstr(std::to_string(size)));
    EXPECT_THAT(handle.status().message(), HasSubstr("1..4096"));
  }
  EXPECT_EQ(pool->TotalSize(), empty);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, MallocReportsAnExhaustedPageSource) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  MustMalloc(*pool, 3000);
  source.set_limit_pages(source.held_bytes() / kPageSize);
  absl::StatusOr<Handle> handle = pool->Malloc(3000);
  EXPECT_EQ(handle.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(handle.status().message(), HasSubstr("out of memory"));
  EXPECT_TRUE(SizeIsExact(*pool, source));
  MustMalloc(*pool, 1000);  // still fits beside the first object
  source.set_limit_pages(UINT64_MAX);
  MustMalloc(*pool, 3000);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, FailingToGrowTheHeaderTableGivesTheDataPageBack) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const uint64_t empty = source.held_bytes();
  // Room for the data page but not for the header table's first block.
  source.set_limit_pages(empty / kPageSize + 1);
  absl::StatusOr<Handle> handle = pool->Malloc(100);
  EXPECT_EQ(handle.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(source.held_bytes(), empty);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

TEST(ZbudTest, CreateReportsAnExhaustedPageSource) {
  CountingPageSource source;
  source.set_limit_pages(0);
  absl::StatusOr<Zpool*> pool = ZbudDriver().Create("test", {}, source);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(source.held_bytes(), 0u);
}

#ifndef NDEBUG
TEST(ZbudDeathTest, DoubleFreeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle handle = MustMalloc(*pool, 100);
  MustMalloc(*pool, 100);  // keeps the page alive
  pool->Free(handle);
  EXPECT_DEATH(pool->Free(handle), "double free");
}

TEST(ZbudDeathTest, StaleHandleAbortsAfterItsHeaderIsReused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle old = MustMalloc(*pool, 100);
  pool->Free(old);                           // page and header released
  const Handle fresh = MustMalloc(*pool, 100);  // reuses the header
  EXPECT_NE(fresh, old);
  EXPECT_DEATH(pool->Free(old), "double free or stale handle");
  EXPECT_DEATH(pool->Map(old, MapMode::kReadOnly), "stale handle");
}

TEST(ZbudDeathTest, ForeignHandleAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  MustMalloc(*pool, 100);
  EXPECT_DEATH(pool->Free(Handle{0x1234} << 32), "foreign handle");
  EXPECT_DEATH(pool->Free(kNoHandle), "foreign handle");
  EXPECT_DEATH(pool->Map(Handle{99} << 32, MapMode::kReadOnly),
               "foreign handle");
}
#else
TEST(ZbudTest, ReleaseBuildsIgnoreADoubleFree) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  const Handle handle = MustMalloc(*pool, 100);
  const Handle other = MustMalloc(*pool, 100);
  Fill(*pool, other, 100, 5);
  pool->Free(handle);
  pool->Free(handle);
  EXPECT_TRUE(Holds(*pool, other, 100, 5));
  EXPECT_TRUE(SizeIsExact(*pool, source));
}
#endif

// A tiny deterministic generator, one per thread.
uint32_t NextRandom(uint32_t& state) {
  state = state * 1664525u + 1013904223u;
  return state >> 8;
}

TEST(ZbudTest, ConcurrentThreadsRoundTripTheirObjects) {
  CountingPageSource source;
  PoolPtr pool = MakePool(source);
  std::atomic<int> corrupt{0};
  auto worker = [&](uint32_t seed) {
    struct Live {
      Handle handle;
      size_t size;
      uint32_t seed;
    };
    std::vector<Live> live;
    uint32_t state = seed;
    for (int i = 0; i < 4000; ++i) {
      if (live.size() < 32 && (live.size() < 8 || NextRandom(state) % 2)) {
        const size_t size = 1 + NextRandom(state) % kMaxObjectSize;
        const Handle handle = MustMalloc(*pool, size);
        Fill(*pool, handle, size, state);
        live.push_back({handle, size, state});
        continue;
      }
      const size_t victim = NextRandom(state) % live.size();
      if (!Holds(*pool, live[victim].handle, live[victim].size,
                 live[victim].seed)) {
        ++corrupt;
      }
      pool->Free(live[victim].handle);
      live[victim] = live.back();
      live.pop_back();
    }
    for (const Live& object : live) pool->Free(object.handle);
  };
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) threads.emplace_back(worker, t + 1);
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_TRUE(SizeIsExact(*pool, source));
  // Every data page went back: a new object needs exactly one new page.
  const uint64_t drained = pool->TotalSize();
  MustMalloc(*pool, 10);
  EXPECT_EQ(pool->TotalSize(), drained + kPageSize);
}

// The owner's side of eviction, as zswap does it: a table of stored objects
// under the owner's lock, which both the owner's Free and the evict callback
// take, so an object is either freed by its owner or written back, never
// both.
struct Owner {
  struct Object {
    size_t size;
    uint32_t seed;
  };
  Zpool* pool = nullptr;
  absl::Mutex mu;
  std::unordered_map<Handle, Object> stored ABSL_GUARDED_BY(mu);
  int evicted ABSL_GUARDED_BY(mu) = 0;
  int corrupt ABSL_GUARDED_BY(mu) = 0;

  static bool Evict(void* context, Zpool& pool, Handle handle) {
    auto* self = static_cast<Owner*>(context);
    absl::MutexLock lock(&self->mu);
    auto it = self->stored.find(handle);
    if (it == self->stored.end()) return false;  // its owner freed it
    if (!Holds(pool, handle, it->second.size, it->second.seed)) {
      ++self->corrupt;
    }
    self->stored.erase(it);
    ++self->evicted;
    return true;
  }

  void Store(size_t size, uint32_t seed) {
    const Handle handle = MustMalloc(*pool, size);
    Fill(*pool, handle, size, seed);
    absl::MutexLock lock(&mu);
    stored[handle] = Object{size, seed};
  }

  // Frees `handle` unless it was written back meanwhile.
  void Drop(Handle handle) {
    absl::MutexLock lock(&mu);
    auto it = stored.find(handle);
    if (it == stored.end()) return;
    if (!Holds(*pool, handle, it->second.size, it->second.seed)) ++corrupt;
    stored.erase(it);
    pool->Free(handle);
  }

  std::vector<Handle> Handles() {
    absl::MutexLock lock(&mu);
    std::vector<Handle> handles;
    for (const auto& entry : stored) handles.push_back(entry.first);
    return handles;
  }
};

TEST(ZbudTest, ShrinkRacesWithOwnersStoringAndFreeing) {
  CountingPageSource source;
  Owner owner;
  PoolPtr pool =
      MakePool(source, ZpoolOps{&Owner::Evict, &owner});
  owner.pool = pool.get();
  std::atomic<bool> done{false};
  auto worker = [&](uint32_t seed) {
    uint32_t state = seed;
    for (int i = 0; i < 3000; ++i) {
      owner.Store(1 + NextRandom(state) % kMaxObjectSize, state);
      if (i % 3 == 0) {
        std::vector<Handle> handles = owner.Handles();
        if (!handles.empty()) {
          owner.Drop(handles[NextRandom(state) % handles.size()]);
        }
      }
    }
  };
  std::thread shrinker([&] {
    while (!done.load()) EXPECT_TRUE(pool->Shrink(4).ok());
  });
  std::thread a(worker, 11), b(worker, 22);
  a.join();
  b.join();
  done = true;
  shrinker.join();

  EXPECT_TRUE(pool->Shrink(1 << 20).ok());  // everything left is written back
  absl::MutexLock lock(&owner.mu);
  EXPECT_TRUE(owner.stored.empty());
  EXPECT_GT(owner.evicted, 0);
  EXPECT_EQ(owner.corrupt, 0);
  EXPECT_TRUE(SizeIsExact(*pool, source));
}

}  // namespace
}  // namespace coldheap::pool
