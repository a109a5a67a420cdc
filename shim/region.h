// The managed region: one large reservation (MAP_NORESERVE) registered with
// userfaultfd, carved into extents for jemalloc by a bump pointer.
//
// Why a bump pointer and nothing smarter: jemalloc runs with opt.retain, so
// it never gives address space back (our dalloc hook declines); it purges
// what it does not use and reuses it itself. The region therefore only ever
// grows, up to its reserved size, and the high-water mark bounds what the
// evictor has to scan.
#ifndef COLDHEAP_SHIM_REGION_H_
#define COLDHEAP_SHIM_REGION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shim/page_table.h"

namespace coldheap::shim {

class Region {
 public:
  Region() = default;
  Region(char* base, size_t bytes) : base_(base), bytes_(bytes) {}

  // A range of `size` bytes aligned to `alignment` (a power of two, at
  // least a page); nullptr when the region is full.
  void* Allocate(size_t size, size_t alignment);

  // The range [addr, addr + size) if addr is exactly where the bump
  // pointer stands (jemalloc growing an extent in place); nullptr otherwise.
  void* AllocateAt(void* addr, size_t size);

  bool Contains(const void* p) const {
    auto a = reinterpret_cast<uintptr_t>(p);
    auto b = reinterpret_cast<uintptr_t>(base_);
    return a >= b && a - b < bytes_;
  }
  // Whether [p, p+size) lies wholly inside the region.
  bool ContainsRange(const void* p, size_t size) const {
    return Contains(p) && size <= bytes_ - Offset(p);
  }
  size_t PageIndex(const void* p) const { return Offset(p) >> kPageShift; }
  char* PageAddress(size_t index) const { return base_ + (index << kPageShift); }

  char* base() const { return base_; }
  size_t bytes() const { return bytes_; }
  size_t pages() const { return bytes_ >> kPageShift; }
  // Pages handed out so far: the part of the region worth scanning.
  size_t used_pages() const {
    return used_.load(std::memory_order_acquire) >> kPageShift;
  }

 private:
  size_t Offset(const void* p) const {
    return static_cast<size_t>(static_cast<const char*>(p) - base_);
  }

  char* base_ = nullptr;
  size_t bytes_ = 0;
  std::atomic<size_t> used_{0};  // bytes from base_ handed out
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_REGION_H_
