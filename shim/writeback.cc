#include "shim/writeback.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "shim/os.h"
#include "shim/page_table.h"

namespace coldheap::shim {
namespace {

// 2^24 slots: 64 GiB of written-back objects.
constexpr uint64_t kMaxSlots = uint64_t{1} << 24;

int OpenUnlinked(const char* path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    return open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  }
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) unlink(path);
  return fd;
}

}  // namespace

absl::Status WritebackFile::Open(const char* path) {
  fd_ = OpenUnlinked(path);
  if (fd_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "COLDHEAP_WRITEBACK_FILE='", path, "' cannot be created (",
        os::ErrnoName(errno),
        "): give a directory or a path that does not exist yet; "
        "writing nothing back"));
  }
  os::OsResult<void*> stack = os::Reserve(kMaxSlots * sizeof(uint64_t));
  if (!stack.ok()) {
    close(fd_);
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
  auto offset = static_cast<off_t>(slot * kPageSize);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd_, static_cast<const char*>(data) + done, size - done,
                       offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool WritebackFile::Read(uint64_t slot, void* data, size_t size) {
  auto offset = static_cast<off_t>(slot * kPageSize);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd_, static_cast<char*>(data) + done, size - done,
                      offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool WritebackFile::CopyForChild(const char* path) {
  int shared = fd_;
  int own = OpenUnlinked(path);
  if (own < 0) return false;
  loff_t in = 0;
  loff_t out = 0;
  auto bytes = static_cast<size_t>(next_slot_ * kPageSize);
  while (bytes > 0) {
    ssize_t n = copy_file_range(shared, &in, own, &out, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // past the end of a sparse tail: nothing to copy
    bytes -= static_cast<size_t>(n);
  }
  close(shared);
  fd_ = own;
  new (&mu_) std::mutex();  // their holders, if any, are not in this process
  new (&shrink_mu) std::mutex();
  return true;
}

}  // namespace coldheap::shim
