// Randomized stress of every zpool driver against a reference model.
//
// The model: each worker thread owns a table of slots; a slot is empty or
// holds one stored object (handle, size, generation). An object's bytes are a
// pattern derived from (handle, generation), so any object can be checked at
// any time without keeping a copy. Workers store (Malloc + Map(kWriteOnly)),
// read (Map(kReadOnly) + verify), rewrite (Map(kReadWrite): verify, then write
// the next generation) and free (verify, then Free) objects of realistic LZ4
// sizes and of the edge sizes 1, 16, 4095, 4096, while another thread runs
// Compact() and Shrink().
//
// Shrink evicts across the whole pool, so its evict callback can be handed
// an object that its owner is using at that very moment. Each slot therefore
// has an atomic state, and both sides claim a slot with a compare-and-swap
// from kStored: the owner to kBusy, the callback to kEvicting. A callback that
// loses (the owner holds the slot, or the handle is not in the model yet or
// any more) keeps the object by returning false; an owner that loses waits
// the few microseconds the callback needs. A callback that accepts verifies
// the bytes, drops the handle from the model and marks the slot kEvicted; the
// owner later sees that and never touches the handle again.
//
// TotalSize() must equal the bytes the pool holds from its (counting)
// PageSource whenever no operation is in flight: checked after joining the
// threads, and after every single step of a single-threaded phase.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "pool/default_registry.h"
#include "pool/zpool.h"
#include "tests/pool/counting_page_source.h"

#if defined(__SANITIZE_ADDRESS__)
#define COLDHEAP_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COLDHEAP_UNDER_ASAN 1
#endif
#endif

namespace coldheap::pool {
namespace {

// ASan makes every operation several times slower; the same interleavings
// show up with fewer operations.
#ifdef COLDHEAP_UNDER_ASAN
constexpr int kScaleDown = 4;
#else
constexpr int kScaleDown = 1;
#endif

constexpr int kWorkers = 4;
constexpr int kRounds = 4;
constexpr int kOpsPerWorkerPerRound = 200'000 / kScaleDown;
constexpr int kSingleThreadedStepsPerRound = 40'000 / kScaleDown;
constexpr int kSlotsPerWorker = 2048;

// At most this many failures are reported in detail; the rest are counted.
constexpr int kMaxReportedFailures = 10;

// ---------------------------------------------------------------------------
// Randomness and the byte pattern.

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix(state_++); }
  uint64_t Uniform(uint64_t n) { return Next() % n; }  // [0, n)
  bool OneIn(uint64_t n) { return Uniform(n) == 0; }

 private:
  uint64_t state_;
};

// Object sizes as LZ4 produces them for 4 KiB pages (text ~2.9 KB, JSON and
// heaps of strings ~1.7-1.8 KB, sparse pages far smaller, poorly compressible
// pages up to a page), plus the edges of the valid range.
size_t RandomObjectSize(Rng& rng) {
  static constexpr size_t kEdges[] = {1, 16, 4095, 4096};
  static constexpr size_t kTypical[] = {1711, 1803, 2868, 1189, 700};
  const uint64_t kind = rng.Uniform(100);
  if (kind < 16) return kEdges[rng.Uniform(4)];
  if (kind < 28) return 2 + rng.Uniform(511);                // sparse pages
  if (kind < 40) return 1 + rng.Uniform(kMaxObjectSize);     // anything
  return kTypical[rng.Uniform(5)] - 400 + rng.Uniform(801);  // +-400 B
}

uint64_t PatternSeed(Handle handle, uint32_t generation) {
  return Mix(handle * 0x2545f4914f6cdd1d ^ generation);
}

void FillPattern(void* data, size_t size, uint64_t seed) {
  auto* bytes = static_cast<unsigned char*>(data);
  size_t offset = 0;
  for (uint64_t i = 0; offset < size; ++i, offset += 8) {
    const uint64_t word = Mix(seed + i);
    memcpy(bytes + offset, &word, std::min<size_t>(8, size - offset));
  }
}

// The offset of the first byte that differs from the pattern, or -1.
long FirstPatternMismatch(const void* data, size_t size, uint64_t seed) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  size_t offset = 0;
  for (uint64_t i = 0; offset < size; ++i, offset += 8) {
    unsigned char expected[8];
    const uint64_t word = Mix(seed + i);
    memcpy(expected, &word, 8);
    for (size_t j = 0; j < std::min<size_t>(8, size - offset); ++j) {
      if (bytes[offset + j] != expected[j]) {
        return static_cast<long>(offset + j);
      }
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------
// The model.

enum class SlotState : uint32_t {
  kEmpty,     // no object; only the owner touches the slot
  kBusy,      // the owner is using the object
  kStored,    // object stored and idle: owner or evict callback may claim it
  kEvicting,  // the evict callback is checking the object
  kEvicted,   // the pool freed the object through Shrink; handle is dead
};

struct Slot {
  std::atomic<SlotState> state{SlotState::kEmpty};
  // Written by whoever holds the slot (kEmpty/kBusy: owner), read by the
  // evict callback once it has claimed kStored -> kEvicting.
  Handle handle = kNoHandle;
  uint32_t size = 0;
  uint32_t generation = 0;
};

// Handle -> slot, for the evict callback. Holds exactly the handles of slots
// in kBusy, kStored or kEvicting with a published object; a handle leaves the
// index before it is freed, and enters it after Malloc returned it.
class HandleIndex {
 public:
  void Insert(Handle handle, Slot* slot) {
    Shard& shard = ShardFor(handle);
    absl::MutexLock lock(&shard.mu);
    const bool inserted = shard.slots.emplace(handle, slot).second;
    EXPECT_TRUE(inserted) << "pool returned live handle " << handle;
  }

  void Erase(Handle handle) {
    Shard& shard = ShardFor(handle);
    absl::MutexLock lock(&shard.mu);
    EXPECT_EQ(shard.slots.erase(handle), 1u) << handle;
  }

  // The slot holding `handle`, moved kStored -> kEvicting; nullptr if the
  // handle is unknown or its owner is using it.
  Slot* ClaimForEviction(Handle handle) {
    Shard& shard = ShardFor(handle);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.slots.find(handle);
    if (it == shard.slots.end()) return nullptr;
    SlotState expected = SlotState::kStored;
    if (!it->second->state.compare_exchange_strong(
            expected, SlotState::kEvicting, std::memory_order_acquire)) {
      return nullptr;
    }
    return it->second;
  }

 private:
  static constexpr int kShards = 64;
  struct Shard {
    absl::Mutex mu;
    std::unordered_map<Handle, Slot*> slots ABSL_GUARDED_BY(mu);
  };
  Shard& ShardFor(Handle handle) { return shards_[Mix(handle) % kShards]; }
  Shard shards_[kShards];
};

// A pool of one driver over a counting page source, the handle index, the
// evict callback, and counters shared by all threads.
class ModelPool {
 public:
  explicit ModelPool(const std::string& type) : type_(type) {
    ZpoolOps ops;
    ops.evict = &ModelPool::Evict;
    ops.context = this;
    absl::StatusOr<ZpoolPtr> pool =
        DefaultZpoolRegistry().CreatePool(type, "stress", ops, source_);
    EXPECT_TRUE(pool.ok()) << pool.status();
    if (pool.ok()) pool_ = std::move(*pool);
  }

  bool ok() const { return pool_ != nullptr; }
  Zpool& pool() { return *pool_; }
  CountingPageSource& source() { return source_; }
  HandleIndex& index() { return index_; }

  void Destroy() { pool_.reset(); }

  // Checks mapped bytes against the slot's pattern; reports a mismatch.
  bool Verify(const void* data, const Slot& slot, const char* where) {
    verified_.fetch_add(1, std::memory_order_relaxed);
    if (data == nullptr) {
      Fail(where, slot, "Map returned nullptr");
      return false;
    }
    const long bad = FirstPatternMismatch(
        data, slot.size, PatternSeed(slot.handle, slot.generation));
    if (bad < 0) return true;
    Fail(where, slot, "bytes differ at offset " + std::to_string(bad));
    return false;
  }

  void Fail(const char* where, const Slot& slot, const std::string& what) {
    if (failures_.fetch_add(1) < kMaxReportedFailures) {
      ADD_FAILURE() << type_ << " " << where << ": handle " << slot.handle
                    << " size " << slot.size << " generation "
                    << slot.generation << ": " << what;
    }
  }

  // Bytes of all objects in the model (stored, not evicted).
  std::atomic<int64_t> live_bytes{0};
  std::atomic<uint64_t> evicted{0};
  std::atomic<uint64_t> evict_refused{0};  // callback said keep
  std::atomic<uint64_t> evict_in_use{0};   // owner held it, or not published
  std::atomic<uint64_t> compacted_pages{0};
  std::atomic<uint64_t> shrunk_pages{0};

  uint64_t verified() const { return verified_.load(); }
  int failures() const { return failures_.load(); }

  // The quiescent invariants: exact TotalSize, and room for every object.
  ::testing::AssertionResult SizesConsistent() {
    const uint64_t total = pool_->TotalSize();
    const uint64_t held = source_.held_bytes();
    const int64_t live = live_bytes.load();
    if (total != held) {
      return ::testing::AssertionFailure()
             << type_ << ": TotalSize " << total << " != held " << held;
    }
    if (live < 0 || static_cast<uint64_t>(live) > total) {
      return ::testing::AssertionFailure()
             << type_ << ": live bytes " << live << " vs TotalSize " << total;
    }
    return ::testing::AssertionSuccess();
  }

  // One Compact and one Shrink, as the maintenance thread does.
  void Maintain(Rng& rng) {
    compacted_pages += pool_->Compact();
    absl::StatusOr<size_t> shrunk = pool_->Shrink(1 + rng.Uniform(4));
    EXPECT_TRUE(shrunk.ok()) << shrunk.status();
    if (shrunk.ok()) shrunk_pages += *shrunk;
  }

 private:
  static bool Evict(void* context, Zpool& pool, Handle handle) {
    return static_cast<ModelPool*>(context)->EvictOne(pool, handle);
  }

  bool EvictOne(Zpool& pool, Handle handle) {
    Slot* slot = index_.ClaimForEviction(handle);
    if (slot == nullptr) {
      evict_in_use.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    EXPECT_EQ(slot->handle, handle);
    bool intact;
    {
      MappedObject object(pool, handle, MapMode::kReadOnly);
      intact = Verify(object.data(), *slot, "evict");
    }
    // Keep one in four (and any damaged one), to exercise both answers.
    if (!intact || evict_decisions_.fetch_add(1) % 4 == 3) {
      evict_refused.fetch_add(1, std::memory_order_relaxed);
      slot->state.store(SlotState::kStored, std::memory_order_release);
      return false;
    }
    index_.Erase(handle);
    live_bytes -= slot->size;
    evicted.fetch_add(1, std::memory_order_relaxed);
    slot->state.store(SlotState::kEvicted, std::memory_order_release);
    return true;  // the pool frees the handle now
  }

  std::string type_;
  CountingPageSource source_;
  HandleIndex index_;
  ZpoolPtr pool_;
  std::atomic<uint64_t> evict_decisions_{0};
  std::atomic<uint64_t> verified_{0};
  std::atomic<int> failures_{0};
};

// Percentages of operations on a stored object; the rest frees it. An empty
// slot is always filled.
struct OpMix {
  int read;
  int rewrite;
};
constexpr OpMix kMixedOps = {45, 25};    // 30% free
constexpr OpMix kMostlyMaps = {75, 17};  // 8% free

// One thread's objects, and the operations on them.
class Worker {
 public:
  Worker(ModelPool& model, int slots, uint64_t seed)
      : model_(model), pool_(model.pool()), slots_(slots), rng_(seed) {}

  uint64_t ops() const { return ops_; }

  // One operation on a random slot.
  void Step(const OpMix& mix) {
    ++ops_;
    Slot& slot = slots_[rng_.Uniform(slots_.size())];
    if (!Claim(slot)) {
      Store(slot);
      return;
    }
    const int op = static_cast<int>(rng_.Uniform(100));
    if (op < mix.read) {
      Read(slot);
    } else if (op < mix.read + mix.rewrite) {
      Rewrite(slot);
    } else {
      Remove(slot);
    }
  }

  void FillAll() {
    for (Slot& slot : slots_) {
      if (slot.state.load() == SlotState::kEmpty) Store(slot);
    }
  }

  void RemoveRandomFraction(int percent) {
    for (Slot& slot : slots_) {
      if (static_cast<int>(rng_.Uniform(100)) < percent && Claim(slot)) {
        Remove(slot);
      }
    }
  }

  // Verifies and frees every object still stored.
  void RemoveAll() {
    for (Slot& slot : slots_) {
      if (Claim(slot)) Remove(slot);
    }
  }

 private:
  // kStored -> kBusy. False when the slot is empty or its object was
  // evicted (the slot is then empty).
  bool Claim(Slot& slot) {
    for (;;) {
      SlotState state = SlotState::kStored;
      if (slot.state.compare_exchange_weak(state, SlotState::kBusy,
                                           std::memory_order_acquire)) {
        return true;
      }
      if (state == SlotState::kEmpty) return false;
      if (state == SlotState::kEvicted) {
        slot.state.store(SlotState::kEmpty, std::memory_order_relaxed);
        return false;
      }
      // kEvicting: the callback is verifying it; that is short.
      std::this_thread::yield();
    }
  }

  void Release(Slot& slot) {
    slot.state.store(SlotState::kStored, std::memory_order_release);
  }

  void Store(Slot& slot) {
    const size_t size = RandomObjectSize(rng_);
    absl::StatusOr<Handle> handle = pool_.Malloc(size);
    if (!handle.ok() || *handle == kNoHandle) {
      ADD_FAILURE() << "Malloc(" << size << "): " << handle.status();
      return;
    }
    slot.handle = *handle;
    slot.size = static_cast<uint32_t>(size);
    slot.generation = static_cast<uint32_t>(rng_.Next());
    {
      MappedObject object(pool_, slot.handle, MapMode::kWriteOnly);
      FillPattern(object.data(), size,
                  PatternSeed(slot.handle, slot.generation));
    }
    model_.live_bytes += size;
    model_.index().Insert(slot.handle, &slot);
    Release(slot);
  }

  void Read(Slot& slot) {
    {
      MappedObject object(pool_, slot.handle, MapMode::kReadOnly);
      // Now and then stay mapped a while, so compaction meets it mapped.
      if (rng_.OneIn(8)) std::this_thread::yield();
      model_.Verify(object.data(), slot, "read");
    }
    Release(slot);
  }

  void Rewrite(Slot& slot) {
    {
      MappedObject object(pool_, slot.handle, MapMode::kReadWrite);
      if (model_.Verify(object.data(), slot, "rewrite")) {
        ++slot.generation;
        FillPattern(object.data(), slot.size,
                    PatternSeed(slot.handle, slot.generation));
      }
    }
    Release(slot);
  }

  void Remove(Slot& slot) {
    {
      MappedObject object(pool_, slot.handle, MapMode::kReadOnly);
      model_.Verify(object.data(), slot, "free");
    }
    model_.index().Erase(slot.handle);
    pool_.Free(slot.handle);
    model_.live_bytes -= slot.size;
    slot.handle = kNoHandle;
    slot.state.store(SlotState::kEmpty, std::memory_order_relaxed);
  }

  ModelPool& model_;
  Zpool& pool_;
  std::vector<Slot> slots_;
  Rng rng_;
  uint64_t ops_ = 0;
};

// Runs `body(worker)` on one thread per worker and `background()` in a loop
// on one more thread until the workers are done.
template <typename Body, typename Background>
void RunConcurrently(std::vector<std::unique_ptr<Worker>>& workers, Body body,
                     Background background) {
  std::atomic<bool> done{false};
  std::thread maintenance([&] {
    while (!done.load(std::memory_order_relaxed)) background();
  });
  std::vector<std::thread> threads;
  for (auto& worker : workers) {
    threads.emplace_back([&body, w = worker.get()] { body(*w); });
  }
  for (std::thread& t : threads) t.join();
  done = true;
  maintenance.join();
}

std::vector<std::unique_ptr<Worker>> MakeWorkers(ModelPool& model, int count,
                                                 int slots) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Worker>(model, slots, 1000 + i));
  }
  return workers;
}

// Frees everything through the model, then checks that the pool is exact and
// that destroying it gives every page back.
void DrainAndDestroy(ModelPool& model,
                     std::vector<std::unique_ptr<Worker>>& workers) {
  for (auto& worker : workers) worker->RemoveAll();
  EXPECT_EQ(model.live_bytes.load(), 0);
  EXPECT_TRUE(model.SizesConsistent());
  model.pool().Compact();
  EXPECT_TRUE(model.SizesConsistent());
  model.Destroy();
  EXPECT_EQ(model.source().held_bytes(), 0u);
}

class ZpoolStressTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ZpoolStressTest, MixedOpsFromFourThreadsMatchModel) {
  ModelPool model(GetParam());
  ASSERT_TRUE(model.ok());
  std::vector<std::unique_ptr<Worker>> workers =
      MakeWorkers(model, kWorkers, kSlotsPerWorker);
  Rng rng(42);

  for (int round = 0; round < kRounds && !HasFailure(); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Concurrent: four workers, one thread compacting and shrinking.
    RunConcurrently(
        workers,
        [](Worker& w) {
          for (int i = 0; i < kOpsPerWorkerPerRound; ++i) w.Step(kMixedOps);
        },
        [&model, maintenance_rng = Rng(7 + round)]() mutable {
          model.Maintain(maintenance_rng);
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        });
    ASSERT_TRUE(model.SizesConsistent());

    // Single-threaded: exact after every step, Compact and Shrink included.
    for (int i = 0; i < kSingleThreadedStepsPerRound; ++i) {
      if (rng.OneIn(50)) {
        model.Maintain(rng);
      } else {
        workers[i % kWorkers]->Step(kMixedOps);
      }
      ASSERT_TRUE(model.SizesConsistent()) << "after step " << i;
    }
  }
  ASSERT_EQ(model.failures(), 0);

  uint64_t ops = 0;
  for (auto& worker : workers) ops += worker->ops();
  printf("%s: %" PRIu64 " ops, %" PRIu64 " objects verified, %" PRIu64
         " evicted, %" PRIu64 " evictions refused, %" PRIu64
         " evict calls on busy objects, %" PRIu64 " pages compacted, %" PRIu64
         " pages shrunk\n",
         GetParam(), ops, model.verified(), model.evicted.load(),
         model.evict_refused.load(), model.evict_in_use.load(),
         model.compacted_pages.load(), model.shrunk_pages.load());
  EXPECT_GE(ops, uint64_t{kRounds} * kWorkers * kOpsPerWorkerPerRound);
  EXPECT_GT(model.evicted.load(), 0u) << "Shrink never evicted anything";

  DrainAndDestroy(model, workers);
}

TEST_P(ZpoolStressTest, CompactionUnderConcurrentMapUnmapKeepsBytes) {
  ModelPool model(GetParam());
  ASSERT_TRUE(model.ok());
  constexpr int kMappers = 3;
  constexpr int kOpsPerMapper = 300'000 / kScaleDown;
  std::vector<std::unique_ptr<Worker>> workers =
      MakeWorkers(model, kMappers, 4096);

  // Start fragmented: fill, then free a random half.
  for (auto& worker : workers) worker->FillAll();
  for (auto& worker : workers) worker->RemoveRandomFraction(50);
  ASSERT_TRUE(model.SizesConsistent());

  RunConcurrently(
      workers,
      [](Worker& w) {
        for (int i = 0; i < kOpsPerMapper; ++i) w.Step(kMostlyMaps);
      },
      [&model] {
        model.compacted_pages += model.pool().Compact();
        std::this_thread::yield();
      });
  ASSERT_TRUE(model.SizesConsistent());
  ASSERT_EQ(model.failures(), 0);
  printf("%s: %" PRIu64 " objects verified, %" PRIu64
         " pages compacted under concurrent maps\n",
         GetParam(), model.verified(), model.compacted_pages.load());
  if (model.pool().MallocSupportMovable()) {
    EXPECT_GT(model.compacted_pages.load(), 0u)
        << "a movable pool never compacted a fragmented pool";
  }

  DrainAndDestroy(model, workers);
}

INSTANTIATE_TEST_SUITE_P(Drivers, ZpoolStressTest,
                         ::testing::Values("zsmalloc", "zbud"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param);
                         });

}  // namespace
}  // namespace coldheap::pool
