#include "shim/dense_tier.h"

#include <cstring>

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStatic*, magicless frames
#include <zstd.h>

#include "shim/os.h"
#include "shim/page_table.h"

namespace coldheap::shim {
namespace {

// Larger than any dictionary the recompressor trains: it sizes the context.
constexpr size_t kMaxDictionaryBytes = size_t{256} << 10;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

bool Set(ZSTD_CCtx* cctx, ZSTD_cParameter p, int value) {
  return !ZSTD_isError(ZSTD_CCtx_setParameter(cctx, p, value));
}

}  // namespace

bool DenseTier::Init(int level) {
  level_ = level;
  // Compressing a 4 KiB page with a dictionary attaches the dictionary's
  // tables, so the context only needs room for the page's own parameters.
  size_t with_dict = ZSTD_estimateCCtxSize_usingCParams(
      ZSTD_getCParams(level, kPageSize, kMaxDictionaryBytes));
  size_t plain =
      ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(level, kPageSize, 0));
  workspace_bytes_ = RoundUp(with_dict > plain ? with_dict : plain, kPageSize);
  os::OsResult<void*> ws = os::Reserve(workspace_bytes_);
  if (!ws.ok()) return false;
  workspace_ = ws.value;
  cctx_ = ZSTD_initStaticCCtx(workspace_, workspace_bytes_);
  return cctx_ != nullptr && Set(cctx_, ZSTD_c_compressionLevel, level) &&
         Set(cctx_, ZSTD_c_format, ZSTD_f_zstd1_magicless) &&
         Set(cctx_, ZSTD_c_contentSizeFlag, 0) &&
         Set(cctx_, ZSTD_c_checksumFlag, 0) && Set(cctx_, ZSTD_c_dictIDFlag, 0) &&
         Set(cctx_, ZSTD_c_forceAttachDict, ZSTD_dictForceAttach);
}

const ZSTD_DDict_s* DenseTier::DictionaryFor(uint8_t codec) const {
  if (codec < kFirstDictCodec) return nullptr;
  return slots_[codec - kFirstDictCodec].ddict.load(std::memory_order_acquire);
}

size_t DenseTier::Compress(const void* page, void* out, size_t capacity) {
  size_t n = ZSTD_compress2(cctx_, out, capacity, page, kPageSize);
  return ZSTD_isError(n) ? 0 : n;
}

bool DenseTier::SetDictionary(const Slot* slot) {
  return !ZSTD_isError(
      ZSTD_CCtx_refCDict(cctx_, slot != nullptr ? slot->cdict : nullptr));
}

// One mapping per dictionary: its bytes, then the compression tables, then
// the decompression tables (both by reference to the bytes).
bool DenseTier::Install(const void* dict, size_t size) {
  if (size == 0 || size > kMaxDictionaryBytes) return false;
  int free_slot = -1;
  for (int k = 0; k < kSlots && free_slot < 0; ++k) {
    if (slots_[k].mapping == nullptr) free_slot = k;
  }
  if (free_slot < 0) return false;
  ZSTD_compressionParameters params = ZSTD_getCParams(level_, kPageSize, size);
  size_t dict_room = RoundUp(size, 64);
  size_t cdict_bytes =
      RoundUp(ZSTD_estimateCDictSize_advanced(size, params, ZSTD_dlm_byRef), 64);
  size_t ddict_bytes = ZSTD_estimateDDictSize(size, ZSTD_dlm_byRef);
  size_t bytes = RoundUp(dict_room + cdict_bytes + ddict_bytes, kPageSize);
  os::OsResult<void*> mapped = os::Reserve(bytes);
  if (!mapped.ok()) return false;
  auto* base = static_cast<char*>(mapped.value);
  memcpy(base, dict, size);
  const ZSTD_CDict* cdict = ZSTD_initStaticCDict(base + dict_room, cdict_bytes, base,
                                           size, ZSTD_dlm_byRef, ZSTD_dct_auto,
                                           params);
  const ZSTD_DDict* ddict =
      ZSTD_initStaticDDict(base + dict_room + cdict_bytes, ddict_bytes, base,
                           size, ZSTD_dlm_byRef, ZSTD_dct_auto);
  Slot& slot = slots_[free_slot];
  slot.cdict = cdict;
  if (cdict == nullptr || ddict == nullptr || !SetDictionary(&slot)) {
    slot.cdict = nullptr;
    (void)SetDictionary(current_ >= kFirstDictCodec
                            ? &slots_[current_ - kFirstDictCodec]
                            : nullptr);
    (void)os::Release(base, bytes);
    return false;
  }
  slot.mapping = base;
  slot.mapping_bytes = bytes;
  slot.dict_bytes = size;
  slot.ddict.store(ddict, std::memory_order_release);
  current_ = static_cast<uint8_t>(kFirstDictCodec + free_slot);
  ++generation_;
  return true;
}

void DenseTier::FreeUnused() {
  for (int k = 0; k < kSlots; ++k) {
    Slot& slot = slots_[k];
    uint8_t codec = static_cast<uint8_t>(kFirstDictCodec + k);
    if (slot.mapping == nullptr || codec == current_ ||
        pages_[codec].load(std::memory_order_acquire) != 0) {
      continue;
    }
    slot.ddict.store(nullptr, std::memory_order_relaxed);
    slot.cdict = nullptr;
    (void)os::Release(slot.mapping, slot.mapping_bytes);
    slot.mapping = nullptr;
    slot.mapping_bytes = 0;
    slot.dict_bytes = 0;
  }
}

int DenseTier::dictionaries() const {
  int n = 0;
  for (const Slot& slot : slots_) n += slot.mapping != nullptr ? 1 : 0;
  return n;
}

uint64_t DenseTier::dictionary_bytes() const {
  return current_ >= kFirstDictCodec ? slots_[current_ - kFirstDictCodec].dict_bytes
                                     : 0;
}

uint64_t DenseTier::memory_bytes() const {
  uint64_t total = workspace_bytes_;
  for (const Slot& slot : slots_) total += slot.mapping_bytes;
  return total;
}

}  // namespace coldheap::shim
