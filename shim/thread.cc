#include "shim/thread.h"

#include <jemalloc/jemalloc.h>
#include <signal.h>

#include "shim/os.h"

namespace coldheap::shim {
namespace {

unsigned internal_arena = 0;

void BindToArena(unsigned arena, bool tcache) {
  mallctl("thread.tcache.enabled", nullptr, nullptr, &tcache, sizeof(tcache));
  mallctl("thread.arena", nullptr, nullptr, &arena, sizeof(arena));
}

}  // namespace

bool CreateInternalArena() {
  size_t size = sizeof(internal_arena);
  return mallctl("arenas.create", &internal_arena, &size, nullptr, 0) == 0;
}

ScopedInternalArena::ScopedInternalArena() {
  size_t size = sizeof(saved_arena_);
  mallctl("thread.arena", &saved_arena_, &size, nullptr, 0);
  size = sizeof(saved_tcache_);
  mallctl("thread.tcache.enabled", &saved_tcache_, &size, nullptr, 0);
  BindToArena(internal_arena, false);
}

ScopedInternalArena::~ScopedInternalArena() {
  BindToArena(saved_arena_, saved_tcache_);
}

bool StartShimThread(pthread_t* thread, void* (*main)(void*), void* arg) {
  ScopedInternalArena arena;  // pthread_create's own allocations
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  bool ok = os::CreateThread(thread, &attr, main, arg).ok();
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return ok;
}

}  // namespace coldheap::shim
