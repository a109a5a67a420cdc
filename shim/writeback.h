// The writeback file (COLDHEAP_WRITEBACK_FILE): where the pool's least
// recently stored objects go when the pool reaches its limit, as zswap
// writes back to swap. The file is created 0600 and unlinked at once (or
// made with O_TMPFILE when the path is a directory), so nothing is left
// behind. Space is handed out in 4 KiB slots (an object is at most 3 KiB):
// simple, and the file stays sparse where objects are small.
//
// Slots are taken and given back only by the shim's own threads (the
// evictor, the fault handlers), under a lock no program thread takes.
//
// Forks: a child reads the file it shares with its parent until it has a
// copy of its own (or, if it cannot make one, until it has read its pages
// back). Meanwhile the parent must not overwrite a slot the child may read,
// and every slot the parent frees after the fork was live in the child. So
// each fork gets a pipe whose write end only the child holds; until its
// read end reports the writer gone (the child is done, or died), the parent
// takes new slots past the end and leaves freed ones for later.
#ifndef COLDHEAP_SHIM_WRITEBACK_H_
#define COLDHEAP_SHIM_WRITEBACK_H_

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"

namespace coldheap::shim {

class WritebackFile {
 public:
  static constexpr uint64_t kNoSlot = ~uint64_t{0};

  // Opens (and unlinks) the file at `path`. Set-up only: allocates.
  absl::Status Open(const char* path);
  bool is_open() const { return fd_ >= 0; }

  // A free slot, or kNoSlot when the free list cannot grow.
  uint64_t Allocate();
  void Release(uint64_t slot);

  // Whole writes and reads of `size` bytes at `slot`; false on I/O error.
  bool Write(uint64_t slot, const void* data, size_t size);
  bool Read(uint64_t slot, void* data, size_t size);

  // The fork protocol above, from the fork handlers (the evictor, the one
  // caller of Allocate, is paused). Without a pipe (no free descriptor) the
  // parent never reuses a freed slot again: the file only grows.
  void PrepareFork();
  void ParentAfterFork();
  // In the child: a copy of the file of its own; false (nothing changed)
  // if it cannot make one, e.g. ENOSPC or EIO.
  bool CopyForChild(const char* path);
  // In the child, after CopyForChild failed and every written-back page was
  // read back: the file is the parent's alone.
  void LeaveToParent();
  // In the child, once it reads the shared file no more: tells the parent.
  void ChildDone();

  // Held by the evictor around each step of the pool's Shrink, and by
  // whoever frees a pool handle meanwhile (see FreeHandle in heap.h).
  std::mutex shrink_mu;

 private:
  int fd_ = -1;
  std::mutex mu_;
  uint64_t next_slot_ = 0;           // slots below are in use or free
  uint64_t* free_slots_ = nullptr;   // a stack, mapped NORESERVE
  uint64_t free_count_ = 0;
  uint64_t free_capacity_ = 0;
  // Read ends of the pipes of children that may still read the file.
  static constexpr int kMaxReadingChildren = 16;
  int reading_children_[kMaxReadingChildren];
  int reading_count_ = 0;
  int fork_pipe_[2] = {-1, -1};  // the fork in progress
  bool never_reuse_ = false;     // a child read without a pipe

  bool MayReuseSlots();
  void ForgetFinishedChildren(int timeout_ms);
};

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_WRITEBACK_H_
