// The shim's own threads (fault handlers, evictor). They must never fault on
// the managed region, so whatever they or libc allocate on their behalf comes
// from an internal jemalloc arena outside the region, with no thread cache
// (whose bins would live in a regular arena). The same goes for the thread
// that creates them in a forked child, where the region is not watched yet.
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

// Binds the calling thread to the internal arena for good: the first thing
// every shim thread does.
void EnterInternalArena();

// pthread_create of a detached thread with all signals blocked (a program's
// signal handler must not run on our threads); `main` starts with
// EnterInternalArena(). False on failure.
bool StartShimThread(pthread_t* thread, void* (*main)(void*), void* arg);

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_THREAD_H_
