#include "shim/recompressor.h"

#include <zdict.h>

#include <cstring>

#include "shim/os.h"
#include "shim/thread.h"

namespace coldheap::shim {
namespace {

// Page table entries looked at, and pages recompressed, per hold of the
// batch lock (what fork and the pool's other users wait for).
constexpr size_t kEntriesPerBatch = 4096;
constexpr size_t kPagesPerBatch = 16;

}  // namespace

bool Recompressor::Init(Heap& heap, std::mutex* batch_mu) {
  heap_ = &heap;
  batch_mu_ = batch_mu;
  dense_ = heap.dense;
  return compressor_.Init(heap.config->compressor, /*dense=*/true);
}

uint64_t Recompressor::Run(uint8_t age_ticks, int64_t budget_ns) {
  uint64_t start = os::ThreadCpuTimeNs();
  auto spent = [&] { return os::ThreadCpuTimeNs() - start; };
  auto over = [&] {
    return budget_ns >= 0 && spent() >= static_cast<uint64_t>(budget_ns);
  };
  if (TrainingDue()) Train();
  size_t used = heap_->region->used_pages();
  size_t scanned = 0;
  while (scanned < used && !over()) {
    std::lock_guard<std::mutex> lock(*batch_mu_);
    size_t done = 0;
    for (size_t n = 0; n < kEntriesPerBatch && scanned < used &&
                       done < kPagesPerBatch;
         ++n, ++scanned) {
      if (cursor_ >= used) cursor_ = 0;
      size_t index = cursor_++;
      PageEntry& e = heap_->table->at(index);
      PageWord w = PageTable::Load(e);
      if (w.state != PageState::kCompressed || w.codec != 0 || w.dense_tried ||
          e.age.load(std::memory_order_relaxed) < age_ticks) {
        continue;
      }
      if (Recompress(index)) ++done;
    }
  }
  {
    std::lock_guard<std::mutex> lock(*batch_mu_);
    dense_->FreeUnused();
    PublishGauges();
  }
  return spent();
}

bool Recompressor::TrainingDue() const {
  uint64_t stored = heap_->stats->stored_pages.load(std::memory_order_relaxed);
  if (dense_->dictionaries() >= DenseTier::kSlots) return false;
  if (train_failed_) return stored >= 4 * trained_on_pages_;
  if (dense_->codec() < DenseTier::kFirstDictCodec) return stored >= kMinSamplePages;
  if (trained_on_pages_ < kSamplePages && stored >= 4 * trained_on_pages_) return true;
  if (since_training_ < 2 * kCalibrationPages || recent_out_ == 0) return false;
  // recent ratio < (1 - decay) x calibration ratio, in integers.
  return recent_in_ * calibration_out_ * 100 <
         calibration_in_ * recent_out_ * (100 - kDecayPercent);
}

void Recompressor::Train() {
  uint64_t start = os::ThreadCpuTimeNs();
  uint64_t stored = heap_->stats->stored_pages.load(std::memory_order_relaxed);
  size_t want = stored < kSamplePages ? static_cast<size_t>(stored) : kSamplePages;
  os::OsResult<void*> samples = os::Reserve(want * kPageSize);
  os::OsResult<void*> dict = os::Reserve(kDictionaryBytes);
  size_t taken = 0;
  bool installed = false;
  if (samples.ok() && dict.ok()) {
    taken = Sample(static_cast<char*>(samples.value), want);
    size_t capacity = taken * kPageSize / 32;
    if (capacity > kDictionaryBytes) capacity = kDictionaryBytes;
    for (size_t k = 0; k < taken; ++k) sample_sizes_[k] = kPageSize;
    size_t n = 0;
    if (taken >= kMinSamplePages / 2) {
      UseInternalArenaForGood();  // zstd's trainer mallocs: not in the region
      n = ZDICT_trainFromBuffer(dict.value, capacity, samples.value,
                                sample_sizes_, static_cast<unsigned>(taken));
    }
    if (n != 0 && !ZDICT_isError(n)) {
      std::lock_guard<std::mutex> lock(*batch_mu_);
      dense_->FreeUnused();
      installed = dense_->Install(dict.value, n);
    }
  }
  if (samples.ok()) (void)os::Release(samples.value, want * kPageSize);
  if (dict.ok()) (void)os::Release(dict.value, kDictionaryBytes);
  trained_on_pages_ = taken > 0 ? taken : static_cast<size_t>(stored);
  train_failed_ = !installed;
  calibration_in_ = calibration_out_ = recent_in_ = recent_out_ = 0;
  since_training_ = 0;
  heap_->stats->dense_train_cpu_ns.fetch_add(os::ThreadCpuTimeNs() - start,
                                             std::memory_order_relaxed);
}

// Up to `want` stored pages, evenly spread over the heap, decompressed into
// `samples` a page each. Returns how many.
size_t Recompressor::Sample(char* samples, size_t want) {
  uint64_t stored = heap_->stats->stored_pages.load(std::memory_order_relaxed);
  size_t stride = want > 0 && stored > want ? static_cast<size_t>(stored / want) : 1;
  size_t used = heap_->region->used_pages();
  size_t taken = 0;
  size_t seen = 0;
  for (size_t i = 0; i < used && taken < want;) {
    std::lock_guard<std::mutex> lock(*batch_mu_);
    for (size_t end = i + kEntriesPerBatch; i < used && i < end && taken < want; ++i) {
      PageEntry& e = heap_->table->at(i);
      uint32_t word = PageTable::LoadWord(e);
      PageWord w = PageWord::Unpack(word);
      if (w.state != PageState::kCompressed || seen++ % stride != 0) continue;
      pool::Handle handle;
      if (!ReadObject(i, word, &handle)) continue;
      char* page = samples + taken * kPageSize;
      bool ok = w.codec == 0
                    ? compressor_.Decompress(object_, w.size, page)
                    : compressor_.DecompressDense(dense_->DictionaryFor(w.codec),
                                                  object_, w.size, page);
      if (ok) ++taken;
    }
  }
  return taken;
}

// Copies the pool object of page `index`, whose word is `word`, into
// object_, holding the page only for the copy.
bool Recompressor::ReadObject(size_t index, uint32_t word, pool::Handle* handle) {
  PageEntry& e = heap_->table->at(index);
  if (!PageTable::Claim(e, word, PageState::kClaimed)) return false;
  *handle = e.payload;
  {
    pool::MappedObject object(*heap_->pool, *handle, pool::MapMode::kReadOnly);
    memcpy(object_, static_cast<char*>(object.data()) + sizeof(ObjectHeader),
           PageWord::Unpack(word).size);
  }
  e.word.store(word, std::memory_order_release);
  return true;
}

bool Recompressor::Recompress(size_t index) {
  PageEntry& e = heap_->table->at(index);
  uint32_t word = PageTable::LoadWord(e);
  PageWord w = PageWord::Unpack(word);
  pool::Handle old;
  if (!ReadObject(index, word, &old)) return false;
  if (!compressor_.Decompress(object_, w.size, page_)) return false;
  pool::Zpool& pool = *heap_->pool;
  size_t size = dense_->Compress(page_, out_, w.size);
  Observe(size == 0 ? w.size : size);
  if (size == 0 || pool.StoredSize(sizeof(ObjectHeader) + size) >=
                       pool.StoredSize(sizeof(ObjectHeader) + w.size)) {
    MarkTried(e, word);
    heap_->stats->dense_kept_pages.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  absl::StatusOr<pool::Handle> fresh = pool.Malloc(sizeof(ObjectHeader) + size);
  if (!fresh.ok()) return false;
  {
    pool::MappedObject object(pool, *fresh, pool::MapMode::kWriteOnly);
    auto header = static_cast<ObjectHeader>(index);
    memcpy(object.data(), &header, sizeof(header));
    memcpy(static_cast<char*>(object.data()) + sizeof(header), out_, size);
  }
  if (!SwapIn(index, word, old, w.size, *fresh, size)) FreeHandle(*heap_, *fresh);
  return true;
}

// Replaces the page's LZ4 object `old` by the dense one `fresh`, if the page
// still holds exactly what was recompressed.
bool Recompressor::SwapIn(size_t index, uint32_t word, pool::Handle old,
                          size_t old_size, pool::Handle fresh, size_t size) {
  PageEntry& e = heap_->table->at(index);
  if (!PageTable::Claim(e, word, PageState::kClaimed)) return false;
  bool same = e.payload == old;
  if (same) {
    pool::MappedObject object(*heap_->pool, old, pool::MapMode::kReadOnly);
    same = memcmp(static_cast<char*>(object.data()) + sizeof(ObjectHeader),
                  object_, old_size) == 0;
  }
  if (!same) {
    e.word.store(word, std::memory_order_release);
    return false;
  }
  uint8_t codec = dense_->codec();
  dense_->Acquire(codec);
  e.payload = fresh;
  PageTable::Publish(e, PageState::kCompressed, static_cast<uint16_t>(size), codec);
  FreeHandle(*heap_, old);
  Stats& stats = *heap_->stats;
  stats.compressed_bytes.fetch_add(size, std::memory_order_relaxed);
  stats.compressed_bytes.fetch_sub(old_size, std::memory_order_relaxed);
  stats.dense_pages.fetch_add(1, std::memory_order_relaxed);
  stats.dense_bytes.fetch_add(size, std::memory_order_relaxed);
  stats.dense_recompressed_pages.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Not worth recompressing: remembered in the word, unless the page moved.
void Recompressor::MarkTried(PageEntry& e, uint32_t word) {
  e.word.compare_exchange_strong(word, word | PageWord::kDenseTried,
                                 std::memory_order_acq_rel);
}

// The current dictionary's record: its first kCalibrationPages set the
// ratio to hold, the rest a moving one (halved every 1024 pages).
void Recompressor::Observe(size_t dense_size) {
  if (dense_->codec() < DenseTier::kFirstDictCodec) return;
  if (++since_training_ <= kCalibrationPages) {
    calibration_in_ += kPageSize;
    calibration_out_ += dense_size;
    return;
  }
  recent_in_ += kPageSize;
  recent_out_ += dense_size;
  if (recent_in_ >= 2048 * kPageSize) {
    recent_in_ /= 2;
    recent_out_ /= 2;
  }
}

void Recompressor::PublishGauges() {
  Stats& stats = *heap_->stats;
  stats.dense_dictionaries.store(dense_->dictionaries(), std::memory_order_relaxed);
  stats.dense_dictionary_bytes.store(dense_->dictionary_bytes(),
                                     std::memory_order_relaxed);
  stats.dense_dictionary_generation.store(dense_->generation(),
                                          std::memory_order_relaxed);
  stats.dense_memory_bytes.store(dense_->memory_bytes(), std::memory_order_relaxed);
}

}  // namespace coldheap::shim
