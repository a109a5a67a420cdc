#include "shim/region.h"

namespace coldheap::shim {

void* Region::Allocate(size_t size, size_t alignment) {
  size_t used = used_.load(std::memory_order_relaxed);
  auto base = reinterpret_cast<uintptr_t>(base_);
  for (;;) {
    // Align the address, not the offset: the base may be less aligned.
    size_t start = ((base + used + alignment - 1) & ~(alignment - 1)) - base;
    if (start > bytes_ || size > bytes_ - start) return nullptr;
    if (used_.compare_exchange_weak(used, start + size,
                                    std::memory_order_acq_rel)) {
      return base_ + start;
    }
  }
}

void* Region::AllocateAt(void* addr, size_t size) {
  if (!Contains(addr)) return nullptr;
  size_t start = Offset(addr);
  if (size > bytes_ - start) return nullptr;
  size_t expected = start;
  if (!used_.compare_exchange_strong(expected, start + size,
                                     std::memory_order_acq_rel)) {
    return nullptr;
  }
  return addr;
}

}  // namespace coldheap::shim
