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

bool Compressor::Init(CompressorKind kind) {
  kind_ = kind;
  // LZ4's state lives on the stack (LZ4_HEAPMODE=0): 16 KiB, no workspace.
  if (kind == CompressorKind::kLz4) return true;
  size_t cbytes = ZSTD_estimateCCtxSize(kZstdLevel);
  size_t dbytes = ZSTD_estimateDCtxSize();
  workspace_bytes_ = (cbytes + dbytes + kPageSize - 1) & ~(kPageSize - 1);
  os::OsResult<void*> reserved = os::Reserve(workspace_bytes_);
  if (!reserved.ok()) return false;
  void* ws = reserved.value;
  workspace_ = ws;
  cctx_ = ZSTD_initStaticCCtx(ws, cbytes);
  dctx_ = ZSTD_initStaticDCtx(static_cast<char*>(ws) + cbytes, dbytes);
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

}  // namespace coldheap::shim
