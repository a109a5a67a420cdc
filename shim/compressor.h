// Page compression for the evictor (compress) and the fault handlers
// (decompress). Each thread owns one Compressor: zstd's contexts are built in
// a workspace the shim maps itself (ZSTD_initStatic*), because zstd would
// otherwise malloc, and the fault path must not. With a dense tier, every
// Compressor can also read the dense tier's pages (shim/dense_tier.h).
#ifndef COLDHEAP_SHIM_COMPRESSOR_H_
#define COLDHEAP_SHIM_COMPRESSOR_H_

#include <cstddef>

#include "shim/config.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;
struct ZSTD_DDict_s;

namespace coldheap::shim {

class Compressor {
 public:
  Compressor() = default;
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;
  ~Compressor();

  // False if the workspace could not be mapped. `dense`: also decompress
  // dense pages.
  bool Init(CompressorKind kind, bool dense = false);

  // Compresses one page into `out`; the compressed size, or 0 when it does
  // not fit in `capacity` bytes (the page compresses poorly).
  size_t Compress(const void* page, void* out, size_t capacity);
  // Restores one page from `size` bytes at `in`; false on corrupt input.
  bool Decompress(const void* in, size_t size, void* page);
  // The same for a dense page: a magicless zstd frame, with `dictionary`
  // (nullptr: none). Needs Init(..., dense = true).
  bool DecompressDense(const ZSTD_DDict_s* dictionary, const void* in,
                       size_t size, void* page);

 private:
  CompressorKind kind_ = CompressorKind::kLz4;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  ZSTD_CCtx_s* cctx_ = nullptr;
  ZSTD_DCtx_s* dctx_ = nullptr;
  ZSTD_DCtx_s* dense_dctx_ = nullptr;
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_COMPRESSOR_H_
