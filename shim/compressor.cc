#include "shim/compressor.h"

#include <lz4.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_initStatic*, ZSTD_estimate*
#include <zstd.h>

#include "shim/os.h"
#include "shim/page_table.h"

namespace coldheap::shim {
namespace {

constexpr int kZstdLevel = 1;

}  // namespace

Compressor::~Compressor() {
  if (workspace_ != nullptr) (void)os::Release(workspace_, workspace_bytes_);
}

// LZ4's state lives on the stack (LZ4_HEAPMODE=0): 16 KiB, no workspace.
// zstd needs a compression and a decompression context; the dense tier a
// second decompression context, set to its frame format once.
bool Compressor::Init(CompressorKind kind, bool dense) {
  kind_ = kind;
  size_t cbytes = kind == CompressorKind::kZstd ? ZSTD_estimateCCtxSize(kZstdLevel) : 0;
  size_t dbytes = (ZSTD_estimateDCtxSize() + 63) & ~size_t{63};
  size_t contexts = (kind == CompressorKind::kZstd ? 1 : 0) + (dense ? 1 : 0);
  if (contexts == 0) return true;
  workspace_bytes_ =
      (cbytes + contexts * dbytes + kPageSize - 1) & ~(kPageSize - 1);
  os::OsResult<void*> reserved = os::Reserve(workspace_bytes_);
  if (!reserved.ok()) return false;
  auto* ws = static_cast<char*>(reserved.value);
  workspace_ = ws;
  if (dense) {
    dense_dctx_ = ZSTD_initStaticDCtx(ws, dbytes);
    if (dense_dctx_ == nullptr ||
        ZSTD_isError(ZSTD_DCtx_setParameter(dense_dctx_, ZSTD_d_format,
                                            ZSTD_f_zstd1_magicless))) {
      return false;
    }
    ws += dbytes;
  }
  if (kind == CompressorKind::kLz4) return true;
  cctx_ = ZSTD_initStaticCCtx(ws, cbytes);
  dctx_ = ZSTD_initStaticDCtx(ws + cbytes, dbytes);
  if (cctx_ == nullptr || dctx_ == nullptr) return false;
  return !ZSTD_isError(
      ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, kZstdLevel));
}

size_t Compressor::Compress(const void* page, void* out, size_t capacity) {
  if (kind_ == CompressorKind::kLz4) {
    int n = LZ4_compress_default(static_cast<const char*>(page),
                                 static_cast<char*>(out), kPageSize,
                                 static_cast<int>(capacity));
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  size_t n = ZSTD_compress2(cctx_, out, capacity, page, kPageSize);
  return ZSTD_isError(n) ? 0 : n;
}

bool Compressor::Decompress(const void* in, size_t size, void* page) {
  if (kind_ == CompressorKind::kLz4) {
    return LZ4_decompress_safe(static_cast<const char*>(in),
                               static_cast<char*>(page), static_cast<int>(size),
                               kPageSize) == static_cast<int>(kPageSize);
  }
  size_t n = ZSTD_decompressDCtx(dctx_, page, kPageSize, in, size);
  return n == kPageSize;
}

bool Compressor::DecompressDense(const ZSTD_DDict_s* dictionary, const void* in,
                                 size_t size, void* page) {
  if (dense_dctx_ == nullptr ||
      ZSTD_isError(ZSTD_DCtx_refDDict(dense_dctx_, dictionary))) {
    return false;
  }
  size_t n = ZSTD_decompressDCtx(dense_dctx_, page, kPageSize, in, size);
  return n == kPageSize;
}

}  // namespace coldheap::shim
