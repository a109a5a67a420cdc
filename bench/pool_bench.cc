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
//
// Dense tier, per page kind (issue 9; Iterations(1), the counters are the
// point). The pages are those the shim would store in its LZ4 pool (not
// same-filled, LZ4 image at most kLz4Limit); every object is stored with the
// shim's 4-byte header; pool sizes are zsmalloc's StoredSize (the size class).
// The compressor is set up as the shim's: zstd's advanced API, magicless
// frames without dictionary ID, content size or checksum, a CDict/DDict per
// dictionary. Every page is checked to round-trip byte for byte.
//   dense/<kind>/lz4                 the LZ4 tier alone.
//   dense/<kind>/train/<K>KB         a K KB dictionary trained with
//                                    ZDICT_trainFromBuffer on 100x K of
//                                    TrainingPages (disjoint from the
//                                    measured pages); train_cpu_ms its
//                                    CPU time (the thread's, so the other
//                                    processes of a shared machine do not
//                                    count).
//   dense/<kind>/zstd<L>/<dict>      zstd level L, without a dictionary
//                                    (nodict) or with a K KB one (dict<K>KB).
// Counters:
//   ratio_raw     pages * 4096 / compressed bytes.
//   ratio_pool    pages * 4096 / sum of StoredSize(4 + compressed size).
//   moved         fraction of pages whose zstd copy lands in a smaller size
//                 class than their LZ4 copy: those the dense tier recompresses.
//   ratio_rule    the pool ratio with that rule applied (LZ4 copy otherwise).
//   comp_us       median time to compress one page (the best of kTimingPasses
//                 runs of each page); decomp_us the same for decompression
//                 (on the lz4 line: LZ4's, on the same pages).
//   pages         pages measured; skipped: same-filled or LZ4 > kLz4Limit.
//   comp_mem_KiB  what the compressor holds: ZSTD_sizeof_CCtx (after use) +
//                 ZSTD_sizeof_CDict; decomp_mem_KiB the same for DCtx+DDict.
#include <lz4.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_c_format, ZSTD_f_zstd1_magicless
#include <zdict.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
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

// The shim's limit on an LZ4 image (shim/evictor.h's kMaxCompressedSize): a
// page compressing worse stays resident and never reaches the dense tier.
constexpr size_t kLz4Limit = pool::kPageSize * 3 / 4;
constexpr size_t kObjectHeader = 4;  // the shim's ObjectHeader
constexpr size_t kDictKB[] = {16, 64, 110};
constexpr int kZstdLevels[] = {1, 3, 6, 9};
// Samples per dictionary byte, as lib/zdict.h advises.
constexpr size_t kSamplesPerDictByte = 100;
constexpr int kTimingPasses = 5;

void DieIfZstdError(size_t code, const char* what) {
  if (ZSTD_isError(code)) {
    fprintf(stderr, "%s: %s\n", what, ZSTD_getErrorName(code));
    abort();
  }
}

// The pages of one kind the dense tier sees, and their LZ4 images' sizes.
struct DenseCorpus {
  std::vector<Page> pages;
  std::vector<size_t> lz4_sizes;
  size_t skipped = 0;  // same-filled or LZ4 above kLz4Limit
};

const DenseCorpus& DensePages(PageKind kind) {
  static DenseCorpus* const corpora = [] {
    auto* c = new DenseCorpus[std::size(kAllPageKinds)];
    std::string lz4;
    for (PageKind k : kAllPageKinds) {
      DenseCorpus& corpus = c[static_cast<int>(k)];
      for (const Page& page : CorpusPages(k)) {
        if (IsSameFilled(page.data()) || !CompressPage(page.data(), lz4) ||
            lz4.size() > kLz4Limit) {
          ++corpus.skipped;
          continue;
        }
        corpus.pages.push_back(page);
        corpus.lz4_sizes.push_back(lz4.size());
      }
    }
    return c;
  }();
  return corpora[static_cast<int>(kind)];
}

// Bytes a compressed page takes in a zsmalloc pool, header included.
size_t PoolBytes(size_t compressed_size) {
  static Zpool* const zsmalloc = CreatePoolOrDie("zsmalloc").release();
  return zsmalloc->StoredSize(kObjectHeader + compressed_size);
}

// Runs f(i) for i in [0, n) kTimingPasses times; returns the median over i
// of each i's fastest run, in microseconds.
template <typename F>
double MedianMicros(size_t n, F&& f) {
  std::vector<double> best(n, 1e300);
  for (int pass = 0; pass < kTimingPasses; ++pass) {
    for (size_t i = 0; i < n; ++i) {
      const auto start = std::chrono::steady_clock::now();
      f(i);
      const std::chrono::duration<double, std::micro> took =
          std::chrono::steady_clock::now() - start;
      best[i] = std::min(best[i], took.count());
    }
  }
  std::nth_element(best.begin(), best.begin() + n / 2, best.end());
  return best[n / 2];
}

// CPU time of the calling thread, in milliseconds.
double ThreadCpuMillis() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

struct Dictionary {
  std::string bytes;
  size_t samples = 0;
  double train_cpu_ms = 0;
};

// The K KB dictionary of a kind, trained once.
const Dictionary& TrainedDictionary(PageKind kind, size_t kb) {
  static auto* const cache =
      new std::unique_ptr<Dictionary>[std::size(kAllPageKinds) *
                                      std::size(kDictKB)];
  const size_t k = std::find(std::begin(kDictKB), std::end(kDictKB), kb) -
                   std::begin(kDictKB);
  std::unique_ptr<Dictionary>& slot =
      cache[static_cast<int>(kind) * std::size(kDictKB) + k];
  if (slot != nullptr) return *slot;
  const size_t capacity = kb * 1024;
  const std::vector<Page> pages =
      TrainingPages(kind, capacity * kSamplesPerDictByte / pool::kPageSize);
  std::string samples(pages.size() * pool::kPageSize, '\0');
  for (size_t i = 0; i < pages.size(); ++i) {
    memcpy(samples.data() + i * pool::kPageSize, pages[i].data(),
           pool::kPageSize);
  }
  const std::vector<size_t> sizes(pages.size(), pool::kPageSize);
  slot = std::make_unique<Dictionary>();
  slot->bytes.resize(capacity);
  slot->samples = pages.size();
  const double start = ThreadCpuMillis();
  const size_t size =
      ZDICT_trainFromBuffer(slot->bytes.data(), capacity, samples.data(),
                            sizes.data(), static_cast<unsigned>(sizes.size()));
  slot->train_cpu_ms = ThreadCpuMillis() - start;
  if (ZDICT_isError(size)) {
    fprintf(stderr, "ZDICT_trainFromBuffer(%s, %zu KB): %s\n",
            PageKindName(kind), kb, ZDICT_getErrorName(size));
    abort();
  }
  slot->bytes.resize(size);
  return *slot;
}

void BM_DenseLz4(benchmark::State& state, PageKind kind) {
  const DenseCorpus& corpus = DensePages(kind);
  const size_t n = corpus.pages.size();
  std::vector<std::string> images(n);
  double raw = 0, pooled = 0;
  for (size_t i = 0; i < n; ++i) {
    CompressPage(corpus.pages[i].data(), images[i]);
    raw += images[i].size();
    pooled += PoolBytes(images[i].size());
  }
  alignas(64) Page out;
  double decomp_us = 0;
  for (auto _ : state) {
    decomp_us = MedianMicros(n, [&](size_t i) {
      LZ4_decompress_safe(images[i].data(),
                          reinterpret_cast<char*>(out.data()),
                          static_cast<int>(images[i].size()), pool::kPageSize);
      benchmark::DoNotOptimize(out);
    });
  }
  state.counters["pages"] = n;
  state.counters["skipped"] = corpus.skipped;
  state.counters["ratio_raw"] = n * pool::kPageSize / raw;
  state.counters["ratio_pool"] = n * pool::kPageSize / pooled;
  state.counters["decomp_us"] = decomp_us;
}

void BM_DenseTrain(benchmark::State& state, PageKind kind, size_t kb) {
  for (auto _ : state) {
    const Dictionary& dict = TrainedDictionary(kind, kb);
    state.counters["train_cpu_ms"] = dict.train_cpu_ms;
    state.counters["dict_bytes"] = dict.bytes.size();
    state.counters["samples"] = dict.samples;
    state.counters["sample_MiB"] =
        dict.samples * pool::kPageSize / double(1 << 20);
  }
}

// zstd contexts set up as the shim's, with an optional dictionary.
class ZstdCodec {
 public:
  ZstdCodec(int level, const std::string* dict)
      : cctx_(ZSTD_createCCtx()), dctx_(ZSTD_createDCtx()) {
    DieIfZstdError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_format,
                                          ZSTD_f_zstd1_magicless),
                   "ZSTD_c_format");
    DieIfZstdError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_dictIDFlag, 0),
                   "ZSTD_c_dictIDFlag");
    DieIfZstdError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_contentSizeFlag, 0),
                   "ZSTD_c_contentSizeFlag");
    DieIfZstdError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 0),
                   "ZSTD_c_checksumFlag");
    DieIfZstdError(ZSTD_DCtx_setParameter(dctx_, ZSTD_d_format,
                                          ZSTD_f_zstd1_magicless),
                   "ZSTD_d_format");
    if (dict == nullptr) {
      DieIfZstdError(
          ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level),
          "ZSTD_c_compressionLevel");
      return;
    }
    cdict_ = ZSTD_createCDict(dict->data(), dict->size(), level);
    ddict_ = ZSTD_createDDict(dict->data(), dict->size());
    if (cdict_ == nullptr || ddict_ == nullptr) {
      fprintf(stderr, "ZSTD_createCDict/DDict failed\n");
      abort();
    }
    DieIfZstdError(ZSTD_CCtx_refCDict(cctx_, cdict_), "ZSTD_CCtx_refCDict");
    DieIfZstdError(ZSTD_DCtx_refDDict(dctx_, ddict_), "ZSTD_DCtx_refDDict");
  }
  ZstdCodec(const ZstdCodec&) = delete;
  ZstdCodec& operator=(const ZstdCodec&) = delete;
  ~ZstdCodec() {
    ZSTD_freeCCtx(cctx_);
    ZSTD_freeDCtx(dctx_);
    ZSTD_freeCDict(cdict_);
    ZSTD_freeDDict(ddict_);
  }

  // Compresses a page into `out` (resized to the compressed size).
  void Compress(const Page& page, std::string& out) {
    out.resize(ZSTD_COMPRESSBOUND(pool::kPageSize));
    const size_t size = ZSTD_compress2(cctx_, out.data(), out.size(),
                                       page.data(), page.size());
    DieIfZstdError(size, "ZSTD_compress2");
    out.resize(size);
  }

  size_t CompressorBytes() const {
    return ZSTD_sizeof_CCtx(cctx_) + ZSTD_sizeof_CDict(cdict_);
  }
  size_t DecompressorBytes() const {
    return ZSTD_sizeof_DCtx(dctx_) + ZSTD_sizeof_DDict(ddict_);
  }

  // Decompresses an image of a page; returns the decompressed size.
  size_t Decompress(const std::string& image, Page& out) {
    return ZSTD_decompressDCtx(dctx_, out.data(), out.size(), image.data(),
                               image.size());
  }

 private:
  ZSTD_CCtx* cctx_;
  ZSTD_DCtx* dctx_;
  ZSTD_CDict* cdict_ = nullptr;
  ZSTD_DDict* ddict_ = nullptr;
};

// dict_kb 0: no dictionary.
void BM_DenseZstd(benchmark::State& state, PageKind kind, int level,
                  size_t dict_kb) {
  const DenseCorpus& corpus = DensePages(kind);
  const size_t n = corpus.pages.size();
  const std::string* dict =
      dict_kb == 0 ? nullptr : &TrainedDictionary(kind, dict_kb).bytes;
  ZstdCodec codec(level, dict);
  std::vector<std::string> images(n);
  alignas(64) Page out;
  double comp_us = 0, decomp_us = 0;
  for (auto _ : state) {
    comp_us = MedianMicros(
        n, [&](size_t i) { codec.Compress(corpus.pages[i], images[i]); });
    decomp_us = MedianMicros(n, [&](size_t i) {
      benchmark::DoNotOptimize(codec.Decompress(images[i], out));
    });
  }
  double raw = 0, pooled = 0, ruled = 0;
  size_t moved = 0;
  for (size_t i = 0; i < n; ++i) {
    if (codec.Decompress(images[i], out) != pool::kPageSize ||
        memcmp(out.data(), corpus.pages[i].data(), pool::kPageSize) != 0) {
      state.SkipWithError("a page did not round-trip");
      return;
    }
    const size_t dense = PoolBytes(images[i].size());
    const size_t lz4 = PoolBytes(corpus.lz4_sizes[i]);
    raw += images[i].size();
    pooled += dense;
    if (dense < lz4) ++moved;
    ruled += std::min(dense, lz4);
  }
  state.counters["ratio_raw"] = n * pool::kPageSize / raw;
  state.counters["ratio_pool"] = n * pool::kPageSize / pooled;
  state.counters["moved"] = double(moved) / n;
  state.counters["ratio_rule"] = n * pool::kPageSize / ruled;
  state.counters["comp_us"] = comp_us;
  state.counters["decomp_us"] = decomp_us;
  state.counters["comp_mem_KiB"] = codec.CompressorBytes() / 1024.0;
  state.counters["decomp_mem_KiB"] = codec.DecompressorBytes() / 1024.0;
}

void RegisterDense() {
  for (PageKind kind : kAllPageKinds) {
    const std::string prefix = std::string("dense/") + PageKindName(kind);
    benchmark::RegisterBenchmark((prefix + "/lz4").c_str(), BM_DenseLz4, kind)
        ->Iterations(1);
    for (size_t kb : kDictKB) {
      benchmark::RegisterBenchmark(
          (prefix + "/train/" + std::to_string(kb) + "KB").c_str(),
          BM_DenseTrain, kind, kb)
          ->Iterations(1);
    }
    for (int level : kZstdLevels) {
      const std::string zstd = prefix + "/zstd" + std::to_string(level);
      benchmark::RegisterBenchmark((zstd + "/nodict").c_str(), BM_DenseZstd,
                                   kind, level, size_t{0})
          ->Iterations(1);
      for (size_t kb : kDictKB) {
        benchmark::RegisterBenchmark(
            (zstd + "/dict" + std::to_string(kb) + "KB").c_str(), BM_DenseZstd,
            kind, level, kb)
            ->Iterations(1);
      }
    }
  }
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
  RegisterDense();
  return 0;
}
[[maybe_unused]] const int registered = RegisterAll();

}  // namespace
}  // namespace coldheap::bench
