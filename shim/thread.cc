#include "shim/thread.h"

#include <jemalloc/jemalloc.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <new>

#include "absl/synchronization/internal/create_thread_identity.h"

#include "shim/log.h"
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

void UseInternalArenaForGood() { BindToArena(internal_arena, false); }

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

namespace {

bool SameCapabilities(const os::ThreadCapabilities& a,
                      const os::ThreadCapabilities& b) {
  for (int i = 0; i < 2; ++i) {
    if (a.effective[i] != b.effective[i] || a.permitted[i] != b.permitted[i] ||
        a.inheritable[i] != b.inheritable[i]) {
      return false;
    }
  }
  return a.securebits == b.securebits;
}

}  // namespace

bool CredentialRelay::Ask() {
  os::OsResult<os::ThreadCapabilities> caps = os::GetThreadCapabilities();
  std::lock_guard<std::mutex> lock(mu_);
  in_step_ = caps.ok();
  if (!caps.ok() || (known_ && SameCapabilities(held_, caps.value))) {
    return false;
  }
  asked_ = caps.value;
  ++round_;
  answers_ = 0;
  changed_.notify_all();  // the evictor, asleep between passes
  return true;
}

void CredentialRelay::AwaitAnswers(int answers) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return answers_ >= answers; });
}

void CredentialRelay::AwaitAnswersAndRelease(int answers) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return answers_ >= answers; });
  released_ = round_;
  changed_.notify_all();
}

void CredentialRelay::Settle() {
  os::OsResult<os::ThreadCapabilities> caps = os::GetThreadCapabilities();
  std::lock_guard<std::mutex> lock(mu_);
  known_ = in_step_ && caps.ok();
  if (known_) held_ = caps.value;
}

bool CredentialRelay::Answer(uint64_t* answered) {
  std::lock_guard<std::mutex> lock(mu_);
  return AnswerLocked(answered);
}

bool CredentialRelay::AnswerLocked(uint64_t* answered) {
  if (*answered == round_ || released_ == round_) return false;
  *answered = round_;
  os::OsStatus set = os::SetThreadCapabilities(asked_);
  // Only if the program's threads disagree among themselves (glibc would
  // abort it without us too) can a set be asked that we cannot take.
  static std::atomic<bool> said{false};
  if (!set.ok()) in_step_ = false;
  if (!set.ok() && !said.exchange(true)) {
    LogLine(LogLevel::kError,
            {"a coldheap thread could not take the program's capabilities (",
             os::ErrnoName(set.error), "); a set*id() call may abort"});
  }
  ++answers_;
  changed_.notify_all();
  return true;
}

void CredentialRelay::HoldUntilReleased(uint64_t round) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return released_ >= round; });
}

void CredentialRelay::SleepAnswering(uint64_t ms, uint64_t* answered) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  std::unique_lock<std::mutex> lock(mu_);
  do {
    // Once it answered, the evictor starts no pass until the round ends: a
    // pass may fault, and the handlers are held meanwhile.
    if (AnswerLocked(answered)) {
      changed_.wait(lock, [&] { return released_ >= *answered; });
    }
  } while (changed_.wait_until(lock, deadline) == std::cv_status::no_timeout);
  AnswerLocked(answered);  // a round opened right at the deadline
}

void CredentialRelay::ResetAfterFork() { new (this) CredentialRelay(); }

CredentialRelay& ShimCredentialRelay() {
  // Never destroyed: the evictor sleeps on it until the process's end, and
  // destroying a condition variable with a waiter blocks.
  alignas(CredentialRelay) static unsigned char storage[sizeof(CredentialRelay)];
  static CredentialRelay* relay = new (storage) CredentialRelay();
  return *relay;
}

}  // namespace coldheap::shim
