// Pool handles whose pages are back in place, handed from a fault handler to
// the evictor, which frees them in a batch at its next scan. Freeing the last
// object of a zspage gives the zspage back to the OS (munmap): measured at
// 13% of a refault's handler time, which the fault path need not pay.
//
// One ring per handler: a single producer (the handler) and a single
// consumer (the evictor), lock-free. A full ring makes the handler free the
// handle itself.
#ifndef COLDHEAP_SHIM_DEFERRED_FREES_H_
#define COLDHEAP_SHIM_DEFERRED_FREES_H_

#include <atomic>
#include <cstddef>

#include "pool/zpool.h"

namespace coldheap::shim {

class DeferredFrees {
 public:
  static constexpr size_t kCapacity = 4096;

  // Producer: false when full.
  bool Push(pool::Handle handle) {
    size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == kCapacity) return false;
    slots_[tail % kCapacity] = handle;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer: frees everything pushed so far.
  void Drain(pool::Zpool& pool) {
    size_t head = head_.load(std::memory_order_relaxed);
    size_t tail = tail_.load(std::memory_order_acquire);
    for (; head != tail; ++head) pool.Free(slots_[head % kCapacity]);
    head_.store(head, std::memory_order_release);
  }

 private:
  std::atomic<size_t> head_{0};
  std::atomic<size_t> tail_{0};
  pool::Handle slots_[kCapacity];
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_DEFERRED_FREES_H_
