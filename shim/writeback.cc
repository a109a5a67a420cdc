#include "shim/writeback.h"

#include <new>

#include "absl/strings/str_cat.h"
#include "shim/log.h"
#include "shim/os.h"
#include "shim/page_table.h"

namespace coldheap::shim {
namespace {

// 2^24 slots: 64 GiB of written-back objects.
constexpr uint64_t kMaxSlots = uint64_t{1} << 24;

}  // namespace

absl::Status WritebackFile::Open(const char* path) {
  os::OsResult<int> file = os::OpenUnlinkedFile(path);
  if (!file.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "COLDHEAP_WRITEBACK_FILE='", path, "' cannot be created (",
        os::ErrnoName(file.error),
        "): give a directory or a path that does not exist yet; "
        "writing nothing back"));
  }
  fd_ = file.value;
  os::OsResult<void*> stack = os::Reserve(kMaxSlots * sizeof(uint64_t));
  if (!stack.ok()) {
    (void)os::CloseFd(fd_);
    fd_ = -1;
    return absl::ResourceExhaustedError("no memory for the writeback slots");
  }
  free_slots_ = static_cast<uint64_t*>(stack.value);
  free_capacity_ = kMaxSlots;
  return absl::OkStatus();
}

uint64_t WritebackFile::Allocate() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_count_ > 0 && MayReuseSlots()) return free_slots_[--free_count_];
  if (next_slot_ >= free_capacity_) return kNoSlot;
  return next_slot_++;
}

void WritebackFile::Release(uint64_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  free_slots_[free_count_++] = slot;
}

bool WritebackFile::Write(uint64_t slot, const void* data, size_t size) {
  return os::WriteAt(fd_, data, size, static_cast<off_t>(slot * kPageSize)).ok();
}

// The only copy of the page is in the file: a transient error (EIO from a
// flaky device, ENOMEM) is worth a few more tries before giving up.
bool WritebackFile::Read(uint64_t slot, void* data, size_t size) {
  constexpr int kTries = 4;
  for (int i = 0; i < kTries; ++i) {
    if (os::ReadAt(fd_, data, size, static_cast<off_t>(slot * kPageSize)).ok()) {
      return true;
    }
  }
  return false;
}

bool WritebackFile::MayReuseSlots() {
  ForgetFinishedChildren(0);
  return reading_count_ == 0 && !never_reuse_;
}

// Closes the read ends whose child is done, waiting up to `timeout_ms` for
// the oldest one.
void WritebackFile::ForgetFinishedChildren(int timeout_ms) {
  int kept = 0;
  for (int i = 0; i < reading_count_; ++i) {
    os::OsResult<bool> gone =
        os::WaitWritersGone(reading_children_[i], i == 0 ? timeout_ms : 0);
    if (gone.ok() && gone.value) {
      (void)os::CloseFd(reading_children_[i]);
    } else {
      reading_children_[kept++] = reading_children_[i];
    }
  }
  reading_count_ = kept;
}

void WritebackFile::PrepareFork() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  // All slots taken: wait for the oldest child to finish its copy.
  ForgetFinishedChildren(reading_count_ == kMaxReadingChildren ? -1 : 0);
  if (reading_count_ == kMaxReadingChildren || !os::MakePipe(fork_pipe_).ok()) {
    fork_pipe_[0] = fork_pipe_[1] = -1;
  }
}

void WritebackFile::ParentAfterFork() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  if (fork_pipe_[0] < 0) {
    if (!never_reuse_) {
      LogLine(LogLevel::kError,
              {"no pipe for a forked child's copy of the writeback file; "
               "freed slots are not reused from now on"});
    }
    never_reuse_ = true;
    return;
  }
  (void)os::CloseFd(fork_pipe_[1]);
  reading_children_[reading_count_++] = fork_pipe_[0];
  fork_pipe_[0] = fork_pipe_[1] = -1;
}

bool WritebackFile::CopyForChild(const char* path) {
  // Their holders, if any, are not in this process.
  new (&mu_) std::mutex();
  new (&shrink_mu) std::mutex();
  int shared = fd_;
  os::OsResult<int> own = os::OpenUnlinkedFile(path);
  if (!own.ok()) return false;
  // A partial copy would lose pages: fail instead (ENOSPC, EIO).
  if (!os::CopyFile(shared, own.value, next_slot_ * kPageSize).ok()) {
    (void)os::CloseFd(own.value);
    return false;
  }
  (void)os::CloseFd(shared);
  fd_ = own.value;
  return true;
}

void WritebackFile::LeaveToParent() {
  (void)os::CloseFd(fd_);
  fd_ = -1;
}

void WritebackFile::ChildDone() {
  // The parent's other children and its own rules are not this process's.
  for (int i = 0; i < reading_count_; ++i) (void)os::CloseFd(reading_children_[i]);
  reading_count_ = 0;
  never_reuse_ = false;
  if (fork_pipe_[0] >= 0) (void)os::CloseFd(fork_pipe_[0]);
  if (fork_pipe_[1] >= 0) (void)os::CloseFd(fork_pipe_[1]);
  fork_pipe_[0] = fork_pipe_[1] = -1;
}

}  // namespace coldheap::shim
