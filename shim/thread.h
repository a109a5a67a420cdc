// The shim's own threads (fault handlers, evictor). They must never fault on
// the managed region, so they never call into jemalloc at all: a thread's
// first call sets up its thread cache, whose bins jemalloc always takes from
// arena 0, which lives in the region (and in a forked child no handler would
// be running yet to serve that fault). What pthread_create allocates for
// them is taken by the creating thread from an internal arena outside the
// region, with its thread cache off. The one exception, the evictor's
// dictionary training (shim/recompressor.h), allocates in that arena too.
#ifndef COLDHEAP_SHIM_THREAD_H_
#define COLDHEAP_SHIM_THREAD_H_

#include <pthread.h>

namespace coldheap::shim {

// Creates the internal arena (default extent hooks: plain mmap). Call once,
// before the region's hooks are installed. False if jemalloc refused.
bool CreateInternalArena();

// While alive, the calling thread allocates from the internal arena.
class ScopedInternalArena {
 public:
  ScopedInternalArena();
  ~ScopedInternalArena();
  ScopedInternalArena(const ScopedInternalArena&) = delete;
  ScopedInternalArena& operator=(const ScopedInternalArena&) = delete;

 private:
  unsigned saved_arena_ = 0;
  bool saved_tcache_ = true;
};

// pthread_create of a detached thread with all signals blocked (a program's
// signal handler must not run on our threads); `main` must not allocate.
// False on failure.
bool StartShimThread(pthread_t* thread, void* (*main)(void*), void* arg);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_THREAD_H_
