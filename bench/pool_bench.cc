// Benchmarks of the zpool drivers on LZ4 images of real pages (see
// page_corpus.h for where the pages come from).
//
// Throughput, per driver, 1 and 2 threads sharing one pool:
//   store/<driver>      Malloc + Map(kWriteOnly) + copy + Unmap: the pool's
//                       part of evicting a page.
//   load_free/<driver>  Map(kReadOnly) + copy out + Unmap + Free: the pool's
//                       part of faulting a page back in.
// Objects are freed (or stored) in batches of kBatch with the timer paused.
//
// Packing, per driver and page kind (Iterations(1); the time is not the
// point):
//   packing            TotalSize / bytes stored, after storing
//                      kPackingObjects objects into a fresh pool.
//   packing_freed      the same after freeing a random half.
//   packing_compacted  the same after then calling Compact().
//   mean_size          mean stored (compressed) object size, bytes.
//   corpus_*           pages behind the objects: how many, how many were
//                      same-filled or compressed to more than a page (those
//                      are not stored).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/page_corpus.h"
#include "benchmark/benchmark.h"
#include "pool/default_registry.h"
#include "pool/zpool.h"

namespace coldheap::bench {
namespace {

using pool::Handle;
using pool::MapMode;
using pool::Zpool;
using pool::ZpoolPtr;

constexpr const char* kDrivers[] = {"zsmalloc", "zbud"};
constexpr size_t kBatch = 8192;
constexpr size_t kPackingObjects = 100'000;

ZpoolPtr CreatePoolOrDie(const char* type) {
  absl::StatusOr<ZpoolPtr> pool =
      pool::DefaultZpoolRegistry().CreatePool(type, "bench", pool::ZpoolOps{});
  if (!pool.ok()) {
    fprintf(stderr, "CreatePool(%s): %s\n", type,
            pool.status().ToString().c_str());
    abort();
  }
  return std::move(*pool);
}

// One long-lived pool per driver, shared by the throughput benchmarks' threads.
Zpool& SharedPool(const char* type) {
  static ZpoolPtr* const zsmalloc = new ZpoolPtr(CreatePoolOrDie("zsmalloc"));
  static ZpoolPtr* const zbud = new ZpoolPtr(CreatePoolOrDie("zbud"));
  return strcmp(type, "zbud") == 0 ? **zbud : **zsmalloc;
}

// Stores one object as the evictor does; kNoHandle if the pool refused.
Handle Store(Zpool& pool, const std::string& object) {
  absl::StatusOr<Handle> handle = pool.Malloc(object.size());
  if (!handle.ok()) return pool::kNoHandle;
  void* data = pool.Map(*handle, MapMode::kWriteOnly);
  memcpy(data, object.data(), object.size());
  pool.Unmap(*handle);
  return *handle;
}

void FreeAll(Zpool& pool, std::vector<Handle>& handles) {
  for (Handle h : handles) pool.Free(h);
  handles.clear();
}

void BM_Store(benchmark::State& state, const char* driver) {
  Zpool& pool = SharedPool(driver);
  const std::vector<std::string>& objects =
      CorpusObjects(PageKind::kMix).objects;
  std::vector<Handle> batch;
  batch.reserve(kBatch);
  size_t next = state.thread_index() * 7919;
  int64_t bytes = 0;
  for (auto _ : state) {
    if (batch.size() == kBatch) {
      state.PauseTiming();
      FreeAll(pool, batch);
      state.ResumeTiming();
    }
    const std::string& object = objects[next++ % objects.size()];
    const Handle handle = Store(pool, object);
    if (handle == pool::kNoHandle) {
      state.SkipWithError("Malloc failed");
      break;
    }
    batch.push_back(handle);
    bytes += object.size();
  }
  FreeAll(pool, batch);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}

void BM_LoadFree(benchmark::State& state, const char* driver) {
  Zpool& pool = SharedPool(driver);
  const std::vector<std::string>& objects =
      CorpusObjects(PageKind::kMix).objects;
  std::vector<std::pair<Handle, size_t>> batch;
  batch.reserve(kBatch);
  size_t next = state.thread_index() * 7919;
  size_t i = 0;
  int64_t bytes = 0;
  alignas(64) unsigned char out[pool::kPageSize];
  for (auto _ : state) {
    if (i == batch.size()) {
      state.PauseTiming();
      batch.clear();
      for (size_t k = 0; k < kBatch; ++k) {
        const std::string& object = objects[next++ % objects.size()];
        batch.emplace_back(Store(pool, object), object.size());
      }
      i = 0;
      state.ResumeTiming();
    }
    const auto [handle, size] = batch[i++];
    const void* data = pool.Map(handle, MapMode::kReadOnly);
    memcpy(out, data, size);
    pool.Unmap(handle);
    pool.Free(handle);
    benchmark::DoNotOptimize(out);
    bytes += size;
  }
  for (; i < batch.size(); ++i) pool.Free(batch[i].first);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}

void BM_Packing(benchmark::State& state, const char* driver, PageKind kind) {
  const CompressedObjects& corpus = CorpusObjects(kind);
  std::mt19937_64 rng(3);
  double packing = 0, packing_freed = 0, packing_compacted = 0;
  double stored_mib = 0, pool_mib = 0;
  for (auto _ : state) {
    ZpoolPtr pool = CreatePoolOrDie(driver);
    std::vector<std::pair<Handle, size_t>> stored;
    stored.reserve(kPackingObjects);
    double stored_bytes = 0;
    for (size_t i = 0; i < kPackingObjects; ++i) {
      const std::string& object = corpus.objects[rng() % corpus.objects.size()];
      const Handle handle = Store(*pool, object);
      if (handle == pool::kNoHandle) {
        state.SkipWithError("Malloc failed");
        return;
      }
      stored.emplace_back(handle, object.size());
      stored_bytes += object.size();
    }
    packing = pool->TotalSize() / stored_bytes;
    stored_mib = stored_bytes / (1 << 20);
    pool_mib = pool->TotalSize() / double(1 << 20);

    std::shuffle(stored.begin(), stored.end(), rng);
    const size_t half = stored.size() / 2;
    for (size_t i = 0; i < half; ++i) {
      pool->Free(stored[i].first);
      stored_bytes -= stored[i].second;
    }
    packing_freed = pool->TotalSize() / stored_bytes;
    pool->Compact();
    packing_compacted = pool->TotalSize() / stored_bytes;
    for (size_t i = half; i < stored.size(); ++i) pool->Free(stored[i].first);
  }
  state.counters["packing"] = packing;
  state.counters["packing_freed"] = packing_freed;
  state.counters["packing_compacted"] = packing_compacted;
  state.counters["mean_size"] = corpus.MeanSize();
  state.counters["stored_MiB"] = stored_mib;
  state.counters["pool_MiB"] = pool_mib;
  state.counters["corpus_pages"] = corpus.pages;
  state.counters["corpus_same_filled"] = corpus.same_filled;
  state.counters["corpus_rejected"] = corpus.rejected;
}

int RegisterAll() {
  for (const char* driver : kDrivers) {
    const std::string d = driver;
    benchmark::RegisterBenchmark(("store/" + d).c_str(), BM_Store, driver)
        ->Threads(1)
        ->Threads(2)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("load_free/" + d).c_str(), BM_LoadFree,
                                 driver)
        ->Threads(1)
        ->Threads(2)
        ->UseRealTime();
  }
  for (const char* driver : kDrivers) {
    for (PageKind kind : kAllPageKinds) {
      const std::string name =
          std::string("packing/") + driver + "/" + PageKindName(kind);
      benchmark::RegisterBenchmark(name.c_str(), BM_Packing, driver, kind)
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
  }
  return 0;
}
[[maybe_unused]] const int registered = RegisterAll();

}  // namespace
}  // namespace coldheap::bench
