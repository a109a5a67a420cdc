#include "shim/writeback.h"

#include <new>

#include "absl/strings/str_cat.h"
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
  if (free_count_ > 0) return free_slots_[--free_count_];
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

bool WritebackFile::CopyForChild(const char* path) {
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
  new (&mu_) std::mutex();  // their holders, if any, are not in this process
  new (&shrink_mu) std::mutex();
  return true;
}

}  // namespace coldheap::shim
