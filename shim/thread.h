// The shim's own threads (fault handlers, evictor). They must never fault on
// the managed region, so they never call into jemalloc at all: a thread's
// first call sets up its thread cache, whose bins jemalloc always takes from
// arena 0, which lives in the region (and in a forked child no handler would
// be running yet to serve that fault). What pthread_create allocates for
// them is taken by the creating thread from an internal arena outside the
// region, with its thread cache off. The one exception, the evictor's
// dictionary training (shim/recompressor.h), allocates in that arena too
// (UseInternalArenaForGood).
#ifndef COLDHEAP_SHIM_THREAD_H_
#define COLDHEAP_SHIM_THREAD_H_

#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "shim/os.h"

namespace coldheap::shim {

// Creates the internal arena (default extent hooks: plain mmap). Call once,
// before the region's hooks are installed. False if jemalloc refused.
bool CreateInternalArena();

// From now on the calling shim thread allocates from the internal arena,
// with its thread cache off for good: turning the cache on would take its
// bins from arena 0, in the region, and the thread could fault while the
// handlers wait for it (a credential change holds them until every shim
// thread has answered). Writes only, so that jemalloc sets up no cache for
// a thread that never had one. For the evictor's dictionary training.
void UseInternalArenaForGood();

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

// Credentials (README "Credentials"). glibc's set*id() functions run the
// syscall on every thread of the process (its SIGSETXID broadcast) and abort
// the process if the threads' answers differ. Capabilities and securebits,
// keep-caps among them, belong to one thread: a program that sets keep-caps,
// changes its uid and raises its effective set again (setpriv; libcap's and
// libcap-ng's users) changes only its own thread. Our threads, still on
// root's rules, had lost every capability at the uid change, refused the
// program's next setgid() and glibc aborted; a program that drops
// CAP_SETUID and expects setuid() to fail saw the same abort the other way.
//
// So before each set*id() call our threads take the calling thread's
// capabilities and securebits (runtime.cc): the kernel then answers them as
// it answers the caller, and moves them to the same state, no more
// privileged than the program. Hiding our threads from the broadcast
// instead (raw clone, not pthreads) would leave them root beside a program
// that dropped root, in its address space.
//
// A round: the requester asks; each shim thread answers at a point where it
// holds nothing (the evictor between passes, a fault handler between
// events); fault handlers then hold still until the round is released, so
// that each doorbell reaches a handler that has not answered yet (see
// FaultHandlers::RingDoorbells). One round at a time (runtime.cc). A round
// costs a few hundred microseconds beside glibc's own broadcast (README), so
// it is skipped when our threads already hold the caller's capabilities, as
// they do after the previous call went through them as through the caller.
class CredentialRelay {
 public:
  // Before a set*id() call, on the calling thread. True if a round is now
  // open, asking for the caller's capabilities; false if our threads hold
  // them already, or if they cannot be read (nothing can be done then).
  bool Ask();
  // Waits until `answers` shim threads answered this round.
  void AwaitAnswers(int answers);
  // The same, then releases the ones holding.
  void AwaitAnswersAndRelease(int answers);
  // After the call: the kernel moved our threads as it moved the caller,
  // from the same state, so they now hold what the caller holds.
  void Settle();

  // On a shim thread: if a round is open that this thread has not answered
  // (`*answered` is the last one it did, 0 at first), takes its
  // capabilities. True if it answered now.
  bool Answer(uint64_t* answered);
  // On a shim thread that answered round `round`: returns once it is
  // released.
  void HoldUntilReleased(uint64_t round);
  // The evictor's sleep between passes: returns after `ms`, answering any
  // round opened meanwhile.
  void SleepAnswering(uint64_t ms, uint64_t* answered);

  // In a forked child (one thread, no round open).
  void ResetAfterFork();

 private:
  bool AnswerLocked(uint64_t* answered);

  std::mutex mu_;
  std::condition_variable changed_;
  os::ThreadCapabilities asked_;
  uint64_t round_ = 0;     // the last round opened
  uint64_t released_ = 0;  // the last round released
  int answers_ = 0;        // answers to round_
  // What every shim thread holds, if `known_`; `in_step_`: this call found
  // or made them equal to the caller.
  os::ThreadCapabilities held_;
  bool known_ = false;
  bool in_step_ = false;
};

// The process's one relay (static storage, built on first use).
CredentialRelay& ShimCredentialRelay();

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_THREAD_H_
