// pool_demo: the pool end to end on a real file, as coldheap's evictor and
// fault handler will use it.
//
//   bazel run //bench:pool_demo -- [FILE]
//
// Splits FILE (default: /usr/bin/perl, 3.8 MB, from perl-base, which is
// Essential on Debian, so every Debian 12 system has it) into 4 KiB pages
// (the last one zero-padded), and per page:
// same-filled pages are kept as their 8-byte value (no pool memory, as
// zswap does); others are LZ4-compressed and stored in the pool (Malloc +
// Map(kWriteOnly) + copy + Unmap); a page LZ4 cannot shrink is stored raw, as
// zram does. Then every page is read back (Map(kReadOnly) + decompress +
// Unmap + Free) and compared with the file, for each driver. Prints a summary;
// exits 1 on any mismatch or pool error, 2 if the file cannot be read.
#include <lz4.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/page_corpus.h"
#include "pool/default_registry.h"
#include "pool/zpool.h"

namespace coldheap::bench {
namespace {

using pool::Handle;
using pool::kPageSize;
using pool::MapMode;
using pool::Zpool;

constexpr char kDefaultFile[] = "/usr/bin/perl";

// What becomes of one page of the file.
struct PagePlan {
  enum Kind { kSameFilled, kCompressed, kRaw } kind;
  uint64_t value = 0;  // kSameFilled: the repeated word
  std::string bytes;   // kCompressed / kRaw: what the pool stores
};

struct FileImage {
  std::string bytes;
  std::vector<PagePlan> pages;
  size_t same_filled = 0;
  size_t raw = 0;
  uint64_t stored_bytes = 0;  // sum of the objects given to the pool
  double compress_ms = 0;
};

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

// The file's page `i`, zero-padded to a whole page.
void CopyPage(const std::string& file, size_t i, unsigned char* page) {
  const size_t offset = i * kPageSize;
  const size_t n = std::min(kPageSize, file.size() - offset);
  memcpy(page, file.data() + offset, n);
  memset(page + n, 0, kPageSize - n);
}

FileImage Plan(std::string bytes) {
  FileImage image;
  image.bytes = std::move(bytes);
  const size_t pages = (image.bytes.size() + kPageSize - 1) / kPageSize;
  const auto start = std::chrono::steady_clock::now();
  unsigned char page[kPageSize];
  for (size_t i = 0; i < pages; ++i) {
    CopyPage(image.bytes, i, page);
    PagePlan plan;
    if (IsSameFilled(page)) {
      plan.kind = PagePlan::kSameFilled;
      memcpy(&plan.value, page, sizeof(plan.value));
      ++image.same_filled;
    } else if (CompressPage(page, plan.bytes) &&
               plan.bytes.size() < kPageSize) {
      plan.kind = PagePlan::kCompressed;
    } else {
      plan.kind = PagePlan::kRaw;
      plan.bytes.assign(reinterpret_cast<const char*>(page), kPageSize);
      ++image.raw;
    }
    image.stored_bytes += plan.bytes.size();
    image.pages.push_back(std::move(plan));
  }
  image.compress_ms = MillisecondsSince(start);
  return image;
}

// Rebuilds page `i` from the pool (or its value) into `page`.
bool Load(Zpool& pool, const PagePlan& plan, Handle handle,
          unsigned char* page) {
  switch (plan.kind) {
    case PagePlan::kSameFilled:
      for (size_t off = 0; off < kPageSize; off += sizeof(plan.value)) {
        memcpy(page + off, &plan.value, sizeof(plan.value));
      }
      return true;
    case PagePlan::kRaw: {
      pool::MappedObject object(pool, handle, MapMode::kReadOnly);
      memcpy(page, object.data(), kPageSize);
      return true;
    }
    case PagePlan::kCompressed: {
      pool::MappedObject object(pool, handle, MapMode::kReadOnly);
      return LZ4_decompress_safe(static_cast<const char*>(object.data()),
                                 reinterpret_cast<char*>(page),
                                 static_cast<int>(plan.bytes.size()),
                                 kPageSize) == static_cast<int>(kPageSize);
    }
  }
  return false;
}

struct DriverResult {
  uint64_t empty_size = 0;  // TotalSize of the new, empty pool
  uint64_t total_size = 0;  // with every page stored
  double store_ms = 0;
  double load_ms = 0;
  size_t mismatches = 0;
  std::string error;
};

DriverResult Run(const char* type, const FileImage& image) {
  DriverResult result;
  absl::StatusOr<pool::ZpoolPtr> created =
      pool::DefaultZpoolRegistry().CreatePool(type, "pool_demo",
                                              pool::ZpoolOps{});
  if (!created.ok()) {
    result.error = created.status().ToString();
    return result;
  }
  Zpool& pool = **created;
  std::vector<Handle> handles(image.pages.size(), pool::kNoHandle);
  result.empty_size = pool.TotalSize();

  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < image.pages.size(); ++i) {
    const std::string& bytes = image.pages[i].bytes;
    if (image.pages[i].kind == PagePlan::kSameFilled) continue;
    absl::StatusOr<Handle> handle = pool.Malloc(bytes.size());
    if (!handle.ok()) {
      result.error =
          "page " + std::to_string(i) + ": " + handle.status().ToString();
      break;
    }
    handles[i] = *handle;
    pool::MappedObject object(pool, *handle, MapMode::kWriteOnly);
    memcpy(object.data(), bytes.data(), bytes.size());
  }
  result.store_ms = MillisecondsSince(start);
  result.total_size = pool.TotalSize();

  start = std::chrono::steady_clock::now();
  unsigned char page[kPageSize];
  unsigned char expected[kPageSize];
  for (size_t i = 0; i < image.pages.size() && result.error.empty(); ++i) {
    const bool ok = Load(pool, image.pages[i], handles[i], page);
    if (handles[i] != pool::kNoHandle) pool.Free(handles[i]);
    CopyPage(image.bytes, i, expected);
    if (!ok || memcmp(page, expected, kPageSize) != 0) {
      if (result.mismatches++ < 5) {
        fprintf(stderr, "%s: page %zu differs from the file\n", type, i);
      }
    }
  }
  result.load_ms = MillisecondsSince(start);
  return result;
}

std::string FormatBytes(double bytes) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.0f B (%.2f MiB)", bytes, bytes / (1 << 20));
  return buf;
}

int Main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : kDefaultFile;
  std::ifstream in(path, std::ios::binary);
  std::string bytes(std::istreambuf_iterator<char>(in), {});
  if (!in.good() && !in.eof()) {
    fprintf(stderr, "pool_demo: cannot read %s\n", path);
    return 2;
  }
  if (bytes.empty()) {
    fprintf(stderr, "pool_demo: %s is empty or unreadable\n", path);
    return 2;
  }
  const FileImage image = Plan(std::move(bytes));
  const size_t pages = image.pages.size();

  printf("coldheap pool demo: %s\n", path);
  printf("  original        %s in %zu pages of 4 KiB\n",
         FormatBytes(image.bytes.size()).c_str(), pages);
  printf("  same-filled     %zu pages (kept as a value, no pool memory)\n",
         image.same_filled);
  printf("  incompressible  %zu pages (stored raw, 4096 B each)\n", image.raw);
  printf("  stored objects  %zu, %s (LZ4, %.1f ms to compress)\n",
         pages - image.same_filled, FormatBytes(image.stored_bytes).c_str(),
         image.compress_ms);
  printf("\n  %-9s %10s %12s %7s %8s %9s %9s  %s\n", "driver", "empty_pool",
         "total_size", "ratio", "packing", "store_ms", "load_ms", "readback");

  int exit_code = 0;
  for (const char* type : {"zsmalloc", "zbud"}) {
    const DriverResult r = Run(type, image);
    if (!r.error.empty()) {
      printf("  %-9s error: %s\n", type, r.error.c_str());
      exit_code = 1;
      continue;
    }
    const double ratio = double(image.bytes.size()) / r.total_size;
    const double packing = double(r.total_size) / image.stored_bytes;
    printf("  %-9s %10llu %12llu %6.2fx %8.3f %9.2f %9.2f  %s\n", type,
           static_cast<unsigned long long>(r.empty_size),
           static_cast<unsigned long long>(r.total_size), ratio, packing,
           r.store_ms, r.load_ms,
           r.mismatches == 0
               ? "byte-exact"
               : (std::to_string(r.mismatches) + " pages differ").c_str());
    if (r.mismatches != 0) exit_code = 1;
  }
  printf(
      "\n  ratio = original / total_size; packing = total_size / stored "
      "object bytes;\n  empty_pool = TotalSize before the first store; "
      "times include LZ4 decompression and the compare\n");
  return exit_code;
}

}  // namespace
}  // namespace coldheap::bench

int main(int argc, char** argv) { return coldheap::bench::Main(argc, argv); }
