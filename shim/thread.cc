#include "shim/thread.h"

#include <jemalloc/jemalloc.h>
#include <sched.h>
#include <signal.h>

#include <atomic>

#include "absl/synchronization/internal/create_thread_identity.h"

#include "shim/os.h"

namespace coldheap::shim {
namespace {

unsigned internal_arena = 0;

// What a new shim thread runs, on its starter's stack until taken.
struct Launch {
  void* (*main)(void*);
  void* arg;
  std::atomic<bool> taken{false};
};

// Abseil maps a thread's synchronization data the first time the thread
// blocks on an absl::Mutex (the pool's locks), and aborts if that mmap fails,
// as under a RLIMIT_AS the program set after start (tests/shim/
// exhaustion_test.cc): each shim thread gets it first thing instead, as it
// starts, before the program can lower its limits.
void* Trampoline(void* p) {
  auto* launch = static_cast<Launch*>(p);
  void* (*main)(void*) = launch->main;
  void* arg = launch->arg;
  launch->taken.store(true, std::memory_order_release);
  absl::synchronization_internal::GetOrCreateCurrentThreadIdentity();
  return main(arg);
}

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
  Launch launch{main, arg};
  bool ok = os::CreateThread(thread, &attr, &Trampoline, &launch).ok();
  while (ok && !launch.taken.load(std::memory_order_acquire)) sched_yield();
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return ok;
}

}  // namespace coldheap::shim
