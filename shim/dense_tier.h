// The dense tier's codecs: zstd at COLDHEAP_DENSE's level, with a dictionary
// trained on this process's own pages (see shim/recompressor.h for when
// pages get here and when a dictionary is trained).
//
// A page's word names its codec (PageWord::codec):
//   0                     COLDHEAP_COMPRESSOR (LZ4 by default): not dense
//   kPlainCodec           zstd without a dictionary (before the first one)
//   kFirstDictCodec + k   zstd with the dictionary in slot k
// Frames are magicless, without checksum, dictionary ID or content size:
// the page word already says all of that, and 4 KiB pages feel every byte.
//
// Dictionaries live in slots of memory the shim maps for itself (dictionary
// bytes, and zstd's compression and decompression tables over them, built
// in place with ZSTD_initStatic*: zstd never mallocs here). A slot counts
// the pages whose bytes need it; it is unmapped only once that count is 0
// and a newer dictionary has replaced it. A forked child inherits the slots
// with the address space, so it reads its parent's dense pages as they were.
//
// Threads: the evictor alone installs, compresses and frees slots, under
// its batch lock (so fork never copies a half-built slot). Any thread that
// owns a dense page (a fault handler restoring it, a purge dropping it) may
// read that page's slot and release its reference: while the page holds
// the reference, the slot cannot go.
#ifndef COLDHEAP_SHIM_DENSE_TIER_H_
#define COLDHEAP_SHIM_DENSE_TIER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

struct ZSTD_CCtx_s;
struct ZSTD_CDict_s;
struct ZSTD_DDict_s;

namespace coldheap::shim {

class DenseTier {
 public:
  static constexpr uint8_t kPlainCodec = 1;
  static constexpr uint8_t kFirstDictCodec = 2;
  // Old dictionaries still in use plus the current one. A retrain waits
  // while every slot is taken.
  static constexpr int kSlots = 6;
  static constexpr uint8_t kCodecs = kFirstDictCodec + kSlots;

  DenseTier() = default;
  DenseTier(const DenseTier&) = delete;
  DenseTier& operator=(const DenseTier&) = delete;

  // Maps the compression context for zstd at `level`; false on failure (the
  // shim then runs without a dense tier).
  bool Init(int level);
  int level() const { return level_; }

  // --- Any thread owning a page of `codec` (> 0) ---
  // Its dictionary, or nullptr for kPlainCodec.
  const ZSTD_DDict_s* DictionaryFor(uint8_t codec) const;
  // The page no longer needs `codec` (restored, purged).
  void Release(uint8_t codec) {
    pages_[codec].fetch_sub(1, std::memory_order_relaxed);
  }

  // --- The evictor only ---
  // The codec Compress uses now.
  uint8_t codec() const { return current_; }
  // Compresses one page with the current codec into `out`; the size, or 0
  // if it does not fit in `capacity`.
  size_t Compress(const void* page, void* out, size_t capacity);
  // A page of `codec` was published.
  void Acquire(uint8_t codec) {
    pages_[codec].fetch_add(1, std::memory_order_relaxed);
  }
  // Makes the dictionary `dict` (`size` bytes, from ZDICT) current, in a
  // free slot. False when no slot is free or memory cannot be mapped; the
  // current codec then stays.
  bool Install(const void* dict, size_t size);
  // Unmaps the slots no page needs any more, except the current one.
  void FreeUnused();

  // For the statistics.
  uint64_t pages(uint8_t codec) const {
    return pages_[codec].load(std::memory_order_relaxed);
  }
  uint32_t generation() const { return generation_; }
  int dictionaries() const;
  uint64_t dictionary_bytes() const;  // the current dictionary's size
  uint64_t memory_bytes() const;      // every slot's mapping + the context

 private:
  struct Slot {
    void* mapping = nullptr;
    size_t mapping_bytes = 0;
    size_t dict_bytes = 0;
    const ZSTD_CDict_s* cdict = nullptr;
    std::atomic<const ZSTD_DDict_s*> ddict{nullptr};
  };

  bool SetDictionary(const Slot* slot);

  int level_ = 3;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  ZSTD_CCtx_s* cctx_ = nullptr;
  uint8_t current_ = kPlainCodec;
  uint32_t generation_ = 0;
  Slot slots_[kSlots];
  std::atomic<uint64_t> pages_[kCodecs] = {};
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_DENSE_TIER_H_
