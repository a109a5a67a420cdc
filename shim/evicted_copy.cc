#include "shim/evicted_copy.h"

#include <cstdlib>

#include "shim/log.h"

namespace coldheap::shim {
namespace {

bool Decompress(Heap& heap, Compressor& compressor, PageWord was,
                const char* in, char* out) {
  if (was.codec == 0) return compressor.Decompress(in, was.size, out);
  return heap.dense != nullptr &&
         compressor.DecompressDense(heap.dense->DictionaryFor(was.codec), in,
                                    was.size, out);
}

}  // namespace

void ReadEvictedCopy(Heap& heap, Compressor& compressor, const PageEntry& e,
                     PageWord was, char* out, char* scratch) {
  if (was.state == PageState::kSameFilled) {
    auto* words = reinterpret_cast<uint64_t*>(out);
    for (size_t i = 0; i < kPageSize / sizeof(uint64_t); ++i) words[i] = e.payload;
    return;
  }
  bool ok;
  if (was.state == PageState::kWrittenBack) {
    ok = heap.writeback->Read(e.payload, scratch, was.size) &&
         Decompress(heap, compressor, was, scratch, out);
  } else {
    pool::MappedObject object(*heap.pool, e.payload, pool::MapMode::kReadOnly);
    ok = Decompress(heap, compressor, was,
                    static_cast<char*>(object.data()) + sizeof(ObjectHeader), out);
  }
  if (!ok) {
    LogLine(LogLevel::kError, {"corrupt compressed page; aborting"});
    abort();
  }
}

void DropEvictedCopy(Heap& heap, const PageEntry& e, PageWord was,
                     DeferredFrees* deferred) {
  Stats& stats = *heap.stats;
  if (was.codec != 0) ReleaseDenseCopy(heap, was);
  if (was.state == PageState::kSameFilled) {
    stats.same_filled_pages.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (was.state == PageState::kWrittenBack) {
    heap.writeback->Release(e.payload);
    stats.file_pages.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (deferred == nullptr || !deferred->Push(e.payload)) FreeHandle(heap, e.payload);
  stats.stored_pages.fetch_sub(1, std::memory_order_relaxed);
  stats.compressed_bytes.fetch_sub(was.size, std::memory_order_relaxed);
}

void ReleaseDenseCopy(Heap& heap, PageWord was) {
  heap.dense->Release(was.codec);
  if (was.state != PageState::kCompressed) return;
  heap.stats->dense_pages.fetch_sub(1, std::memory_order_relaxed);
  heap.stats->dense_bytes.fetch_sub(was.size, std::memory_order_relaxed);
}

}  // namespace coldheap::shim
