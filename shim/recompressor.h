// The dense tier's background work (COLDHEAP_DENSE), done on the evictor's
// thread after each scan's eviction, in what eviction and refaults left of
// the CPU budget (eviction comes first: taking a cold page out frees ~2.4
// KiB for ~20 us here, recompressing one frees a few hundred bytes for more).
//
// 1. Recompression. A page that has stayed in the pool as COLDHEAP_COMPRESSOR
//    wrote it (codec 0) for COLDHEAP_DENSE_AGE ticks is decompressed and
//    compressed again with the dense codec. The new copy replaces the old
//    one only if it lands in a smaller pool size class (zram's recompression
//    rule: any other result frees nothing and makes the refault slower);
//    otherwise the page is marked (PageWord::dense_tried) and kept. The page
//    is claimed only to copy its object out and, later, to swap the handle,
//    so a fault on it in between is served at once from its LZ4 copy; the
//    swap then finds the word changed and drops the work. A page that was
//    refaulted and taken out again meanwhile, with the same word and handle,
//    is caught by comparing the object's bytes with the copy.
// 2. Training. Once kMinSamplePages pages are stored, a sample of them,
//    spread over the heap, is decompressed into memory the shim maps and a
//    dictionary is trained on it (ZDICT_trainFromBuffer, ~1/32 the sample's
//    size, up to kDictionaryBytes). zstd's trainer is the one place a shim
//    thread calls malloc: from the internal arena with no thread cache
//    (outside the region, see UseInternalArenaForGood), holding no lock of
//    ours and no page. A fork during a
//    training leaves the child a copy of the sample (a few MiB, unused).
// 3. Retraining, when the pages recompressed with the current dictionary
//    compress kDecayPercent worse than the first kCalibrationPages did, or
//    when the pool has grown to 4x the sample the dictionary came from (an
//    early dictionary saw little). The old dictionary stays until its last
//    page is gone (DenseTier).
#ifndef COLDHEAP_SHIM_RECOMPRESSOR_H_
#define COLDHEAP_SHIM_RECOMPRESSOR_H_

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "shim/compressor.h"
#include "shim/heap.h"

namespace coldheap::shim {

class Recompressor {
 public:
  static constexpr size_t kDictionaryBytes = size_t{64} << 10;
  // zstd's advice: samples of ~100x the dictionary.
  static constexpr size_t kSamplePages = 100 * kDictionaryBytes / kPageSize;
  static constexpr size_t kMinSamplePages = 256;
  static constexpr uint64_t kCalibrationPages = 256;
  static constexpr uint64_t kDecayPercent = 15;

  // `batch_mu` is the evictor's: held around each batch of pages.
  bool Init(Heap& heap, std::mutex* batch_mu);

  // One pass: trains if due, then recompresses pages out for at least
  // `age_ticks`, until this thread has spent `budget_ns` of CPU (< 0: no
  // limit, the stress mode). Returns the CPU spent.
  uint64_t Run(uint8_t age_ticks, int64_t budget_ns);

 private:
  friend class RecompressorPeer;  // tests: a fault between two steps

  bool TrainingDue() const;
  void Train();
  size_t Sample(char* samples, size_t want);
  bool ReadObject(size_t index, uint32_t word, pool::Handle* handle);
  bool Recompress(size_t index);
  bool SwapIn(size_t index, uint32_t word, pool::Handle old, size_t old_size,
              pool::Handle fresh, size_t size);
  void MarkTried(PageEntry& e, uint32_t word);
  void Observe(size_t dense_size);
  void PublishGauges();

  Heap* heap_ = nullptr;
  std::mutex* batch_mu_ = nullptr;
  DenseTier* dense_ = nullptr;
  Compressor compressor_;  // reads both tiers
  size_t cursor_ = 0;
  // The current dictionary: the sample it came from, and the ratio of the
  // pages recompressed with it (first kCalibrationPages, then the latest).
  size_t trained_on_pages_ = 0;
  uint64_t calibration_in_ = 0, calibration_out_ = 0;
  uint64_t recent_in_ = 0, recent_out_ = 0;
  uint64_t since_training_ = 0;
  bool train_failed_ = false;
  size_t sample_sizes_[kSamplePages];  // for ZDICT: every sample is a page
  char object_[kPageSize];  // the LZ4 object's bytes
  char page_[kPageSize];
  char out_[kPageSize];
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_RECOMPRESSOR_H_
