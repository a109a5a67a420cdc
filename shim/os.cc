#include "shim/os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#ifdef COLDHEAP_FAULT_INJECTION
#include "shim/fault_injector.h"
#endif

namespace coldheap::os {
namespace {

std::atomic<uint64_t> failures{0};

// The errno to fail this call of `site` with, in the test build; 0 (and no
// code) in the release build.
inline int Injected([[maybe_unused]] Site site) {
#ifdef COLDHEAP_FAULT_INJECTION
  return fault_injection::Check(site);
#else
  return 0;
#endif
}

// Counts a failure the caller has to handle and passes its errno on.
int Failed(int error) {
  failures.fetch_add(1, std::memory_order_relaxed);
  return error;
}

// The errno from the last call, counted as a failure unless 0.
int Checked(bool ok) { return ok ? 0 : Failed(errno); }

constexpr uintptr_t RoundUp(uintptr_t value, uintptr_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

__u64 Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// ---------------------------------------------------------------------------
// Userfaultfd set-up helpers (allocation allowed: set-up only).

struct FeatureName {
  uint64_t bit;
  const char* name;
  const char* since;  // first Linux release with it
};

constexpr FeatureName kFeatureNames[] = {
    {UFFD_FEATURE_PAGEFAULT_FLAG_WP, "PAGEFAULT_FLAG_WP", "5.7"},
    {UFFD_FEATURE_EVENT_FORK, "EVENT_FORK", "4.11"},
    {UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP", "4.11"},
    {UFFD_FEATURE_EVENT_REMOVE, "EVENT_REMOVE", "4.11"},
    {UFFD_FEATURE_MISSING_HUGETLBFS, "MISSING_HUGETLBFS", "4.11"},
    {UFFD_FEATURE_MISSING_SHMEM, "MISSING_SHMEM", "4.11"},
    {UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP", "4.11"},
    {UFFD_FEATURE_SIGBUS, "SIGBUS", "4.14"},
    {UFFD_FEATURE_THREAD_ID, "THREAD_ID", "4.14"},
    {UFFD_FEATURE_MINOR_HUGETLBFS, "MINOR_HUGETLBFS", "5.13"},
    {UFFD_FEATURE_MINOR_SHMEM, "MINOR_SHMEM", "5.14"},
    {UFFD_FEATURE_EXACT_ADDRESS, "EXACT_ADDRESS", "5.18"},
    {UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "WP_HUGETLBFS_SHMEM", "5.19"},
    {UFFD_FEATURE_WP_UNPOPULATED, "WP_UNPOPULATED", "6.4"},
    {UFFD_FEATURE_POISON, "POISON", "6.6"},
    {UFFD_FEATURE_WP_ASYNC, "WP_ASYNC", "6.7"},
    {UFFD_FEATURE_MOVE, "MOVE", "6.8"},
};

// The first line of a small /proc file, or "?".
std::string ReadProcValue(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "?";
  char buffer[32];
  ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
  close(fd);
  if (n <= 0) return "?";
  buffer[n] = '\0';
  buffer[strcspn(buffer, "\n")] = '\0';
  return buffer;
}

bool IsPermissionError(int error) { return error == EPERM || error == EACCES; }

struct RawUffd {
  int fd = -1;
  bool via_device = false;
};

// userfaultfd(2). Returns the fd or -errno.
int OpenViaSyscall(int flags) {
  long fd = syscall(SYS_userfaultfd, flags);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

// /dev/userfaultfd (Linux 6.1): access is decided by the device's file
// permissions, not by vm.unprivileged_userfaultfd. Returns the fd or -errno;
// `stage` says which step failed.
int OpenViaDevice(int flags, const char** stage) {
  *stage = "open";
  int device = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (device < 0) return -errno;
  *stage = "USERFAULTFD_IOC_NEW";
  int fd = ioctl(device, USERFAULTFD_IOC_NEW, flags);
  int error = errno;
  close(device);
  return fd < 0 ? -error : fd;
}

std::string ExplainSyscallError(int error) {
  std::string text = absl::StrCat("userfaultfd(2): ", ErrnoName(error));
  if (error == EPERM) {
    absl::StrAppend(
        &text, " (vm.unprivileged_userfaultfd=",
        ReadProcValue("/proc/sys/vm/unprivileged_userfaultfd"),
        " and no CAP_SYS_PTRACE, or a seccomp filter; UFFD_USER_MODE_ONLY "
        "would be allowed but coldheap must serve faults taken by the "
        "kernel, as in read(2) into the heap)");
  } else if (error == ENOSYS) {
    absl::StrAppend(&text,
                    " (kernel built without CONFIG_USERFAULTFD, or a seccomp "
                    "filter)");
  }
  return text;
}

std::string ExplainDeviceError(int error, const char* stage) {
  std::string text =
      absl::StrCat("/dev/userfaultfd ", stage, ": ", ErrnoName(error));
  if (strcmp(stage, "open") == 0) {
    if (error == ENOENT) {
      absl::StrAppend(&text, " (no such device: Linux < 6.1)");
    } else if (IsPermissionError(error)) {
      absl::StrAppend(&text,
                      " (not accessible: needs read-write permission on the "
                      "device, usually root only)");
    }
  }
  return text;
}

// Opens a userfaultfd from `source`, trying the syscall first under kAny.
absl::StatusOr<RawUffd> OpenRaw(UffdSource source, int flags) {
  std::string reasons;
  bool permission = false;
  if (source != UffdSource::kDevice) {
    int fd = OpenViaSyscall(flags);
    if (fd >= 0) return RawUffd{fd, false};
    reasons = ExplainSyscallError(-fd);
    permission |= IsPermissionError(-fd);
  }
  if (source != UffdSource::kSyscall) {
    const char* stage = "";
    int fd = OpenViaDevice(flags, &stage);
    if (fd >= 0) return RawUffd{fd, true};
    absl::StrAppend(&reasons, reasons.empty() ? "" : "; ",
                    ExplainDeviceError(-fd, stage));
    permission |= IsPermissionError(-fd);
  }
  std::string message = absl::StrCat("userfaultfd unavailable: ", reasons);
  return permission ? absl::PermissionDeniedError(message)
                    : absl::UnavailableError(message);
}

// The UFFDIO_API handshake asking for `features`. Returns errno or 0.
int Handshake(int fd, uint64_t features, uffdio_api* api) {
  *api = {};
  api->api = UFFD_API;
  api->features = features;
  return ioctl(fd, UFFDIO_API, api) == 0 ? 0 : errno;
}

std::string DescribeMissing(uint64_t missing) {
  std::string text;
  for (const FeatureName& f : kFeatureNames) {
    if ((missing & f.bit) == 0) continue;
    absl::StrAppend(&text, text.empty() ? "" : ", ", f.name, " (Linux ",
                    f.since, "+)");
    missing &= ~f.bit;
  }
  if (missing != 0) {
    absl::StrAppend(&text, text.empty() ? "" : ", ", "bits 0x",
                    absl::Hex(missing));
  }
  return text;
}

// ---------------------------------------------------------------------------
// Fills.

// The result of a UFFDIO_COPY/ZEROPAGE/MOVE-style ioctl: `ret` from ioctl,
// `progress` the kernel's count (bytes, or -errno).
OsResult<size_t> FillResult(int ret, int error, __s64 progress, size_t len) {
  if (ret == 0) return {len, 0};
  if (progress > 0) return {static_cast<size_t>(progress), error};
  return {0, error};
}

// A fill's result, its error counted as a failure unless it is the EAGAIN
// of a fill that made progress.
OsResult<size_t> Counted(OsResult<size_t> r) {
  if (!r.ok() && !(r.error == EAGAIN && r.value > 0)) (void)Failed(r.error);
  return r;
}

// EEXIST on the first page of a fill: someone else filled it. Count the page
// as done and wake whoever waits on it.
OsResult<size_t> FirstPagePresent(int uffd, void* dst, size_t len,
                                  bool wake) {
  if (wake) {
    OsStatus woken = Wake(uffd, dst, kPageSize);
    if (!woken.ok()) return {0, woken.error};
  }
  return {kPageSize, len > kPageSize ? EAGAIN : 0};
}

// Kernel 6.18 moves runs of pages in batches, and a batch can move pages
// that the ioctl then does not count: its internal retry finds them at dst
// and fails with EEXIST (seen as lost pages: the caller thought them still
// in place). The page tables are the truth: after the counted bytes, a page
// present at dst whose source is empty was moved. Callers own both ranges
// (dst empty before the move, src claimed so nothing refills it), so that
// cannot be a page that was there already.
OsResult<size_t> CountUnreportedMoves(char* dst, char* src, size_t len,
                                      OsResult<size_t> reported) {
  constexpr size_t kChunk = 64;
  size_t done = reported.value;
  while (done < len) {
    unsigned char at_dst[kChunk];
    unsigned char at_src[kChunk];
    size_t pages = (len - done) / kPageSize;
    if (pages > kChunk) pages = kChunk;
    if (mincore(dst + done, pages * kPageSize, at_dst) != 0 ||
        mincore(src + done, pages * kPageSize, at_src) != 0) {
      break;
    }
    size_t moved = 0;
    while (moved < pages && (at_dst[moved] & 1) && !(at_src[moved] & 1)) ++moved;
    done += moved * kPageSize;
    if (moved < pages) break;
  }
  if (done == reported.value) return reported;
  return {done, done == len ? 0 : EAGAIN};
}

}  // namespace

const char* SiteName(Site site) {
  static constexpr const char* kNames[] = {
      "reserve",     "release",      "dontneed",     "register",
      "copy",        "zeropage",     "move",         "wake",
      "read_events", "pagemap_scan", "open_uffd",    "open_pagemap",
      "pin",         "pool_map",     "file_open",    "file_write",
      "file_read",   "file_copy",    "thread_create", "pipe",
      "cap_get",     "cap_set",
  };
  static_assert(sizeof(kNames) / sizeof(kNames[0]) ==
                static_cast<size_t>(Site::kCount));
  const auto i = static_cast<size_t>(site);
  return i < static_cast<size_t>(Site::kCount) ? kNames[i] : "?";
}

uint64_t FailureCount() { return failures.load(std::memory_order_relaxed); }

uint64_t InjectedFailureCount() {
#ifdef COLDHEAP_FAULT_INJECTION
  return fault_injection::InjectedCount();
#else
  return 0;
#endif
}

const char* ErrnoName(int error) {
  const char* name = strerrorname_np(error);
  return name != nullptr ? name : "E?";
}

OsStatus CloseFd(int fd) { return {close(fd) == 0 ? 0 : errno}; }

// ---------------------------------------------------------------------------
// Memory.

OsResult<void*> Reserve(size_t bytes) {
  if (bytes == 0) return {nullptr, EINVAL};
  const size_t size = RoundUp(bytes, kPageSize);
  // mmap returns page-aligned memory: this much more always holds a 2 MiB
  // aligned start.
  const size_t span = size + kHugePageSize - kPageSize;
  if (size < bytes || span < size) return {nullptr, ENOMEM};
  if (int e = Injected(Site::kReserve)) return {nullptr, Failed(e)};
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return {nullptr, Failed(errno)};
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = RoundUp(base, kHugePageSize);
  const size_t head = start - base;
  const size_t tail = span - head - size;
  if (head != 0) munmap(raw, head);
  if (tail != 0) munmap(reinterpret_cast<void*>(start + size), tail);
  void* region = reinterpret_cast<void*>(start);
  // Best effort: EINVAL only where the kernel has no THP at all.
  (void)NoHugePages(region, size);
  return {region, 0};
}

OsStatus Release(void* addr, size_t bytes) {
  if (int e = Injected(Site::kRelease)) return {Failed(e)};
  return {Checked(munmap(addr, bytes) == 0)};
}

OsStatus DontNeed(void* addr, size_t bytes) {
  if (int e = Injected(Site::kDontNeed)) return {Failed(e)};
  return {Checked(madvise(addr, bytes, MADV_DONTNEED) == 0)};
}

OsStatus NoHugePages(void* addr, size_t bytes) {
  return {madvise(addr, bytes, MADV_NOHUGEPAGE) == 0 ? 0 : errno};
}

// ---------------------------------------------------------------------------
// Userfaultfd.

absl::StatusOr<Userfaultfd> OpenUserfaultfd(const UffdOptions& options) {
  // Never UFFD_USER_MODE_ONLY: see os.h.
  const int flags = O_CLOEXEC | (options.nonblocking ? O_NONBLOCK : 0);

  if (int e = Injected(Site::kOpenUffd)) {
    return absl::UnavailableError(absl::StrCat(
        "userfaultfd unavailable: userfaultfd(2): ", ErrnoName(Failed(e))));
  }
  // What the kernel offers, learnt on a throw-away fd: the handshake happens
  // once per fd, and asking for an unknown feature fails it.
  absl::StatusOr<RawUffd> probe = OpenRaw(options.source, flags);
  if (!probe.ok()) return probe.status();
  uffdio_api api;
  int error = Handshake(probe->fd, 0, &api);
  close(probe->fd);
  if (error != 0) {
    return absl::UnavailableError(absl::StrCat(
        "userfaultfd: UFFDIO_API handshake failed: ", ErrnoName(error)));
  }
  const uint64_t available = api.features;
  const uint64_t missing = options.required_features & ~available;
  if (missing != 0) {
    return absl::UnavailableError(absl::StrCat(
        "userfaultfd: the kernel lacks ", DescribeMissing(missing)));
  }

  // The same way in that worked for the probe.
  absl::StatusOr<RawUffd> raw = OpenRaw(
      probe->via_device ? UffdSource::kDevice : UffdSource::kSyscall, flags);
  if (!raw.ok()) return raw.status();
  const uint64_t asked = (options.wanted_features | options.required_features) &
                         available;
  error = Handshake(raw->fd, asked, &api);
  if (error != 0) {
    close(raw->fd);
    return absl::UnavailableError(
        absl::StrCat("userfaultfd: UFFDIO_API handshake asking for ",
                     DescribeFeatures(asked), " failed: ", ErrnoName(error)));
  }
  Userfaultfd uffd;
  uffd.fd = raw->fd;
  // The kernel answers with everything it offers, not what it enabled: the
  // enabled set is what was asked for.
  uffd.features = asked & api.features;
  uffd.available = available;
  uffd.ioctls = api.ioctls;
  uffd.via_device = raw->via_device;
  return uffd;
}

std::string DescribeFeatures(uint64_t features) {
  std::string text;
  for (const FeatureName& f : kFeatureNames) {
    if ((features & f.bit) == 0) continue;
    absl::StrAppend(&text, text.empty() ? "" : "|", f.name);
    features &= ~f.bit;
  }
  if (features != 0) {
    absl::StrAppend(&text, text.empty() ? "" : "|", "0x", absl::Hex(features));
  }
  return text.empty() ? "none" : text;
}

OsResult<uint64_t> Register(int uffd, void* addr, size_t len, uint64_t mode) {
  uffdio_register reg = {};
  reg.range.start = Addr(addr);
  reg.range.len = len;
  reg.mode = mode;
  if (int e = Injected(Site::kRegister)) return {0, Failed(e)};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) return {0, Failed(errno)};
  return {reg.ioctls, 0};
}

OsStatus Unregister(int uffd, void* addr, size_t len) {
  uffdio_range range = {Addr(addr), len};
  return {ioctl(uffd, UFFDIO_UNREGISTER, &range) == 0 ? 0 : errno};
}

OsResult<size_t> Copy(int uffd, void* dst, const void* src, size_t len,
                      uint64_t mode) {
  uffdio_copy copy = {};
  copy.dst = Addr(dst);
  copy.src = Addr(src);
  copy.len = len;
  copy.mode = mode;
  if (int e = Injected(Site::kCopy)) return {0, Failed(e)};
  const int ret = ioctl(uffd, UFFDIO_COPY, &copy);
  const int error = errno;
  if (ret != 0 && error == EEXIST) {
    return FirstPagePresent(uffd, dst, len,
                            (mode & UFFDIO_COPY_MODE_DONTWAKE) == 0);
  }
  return Counted(FillResult(ret, error, copy.copy, len));
}

OsResult<size_t> ZeroPage(int uffd, void* dst, size_t len, uint64_t mode) {
  uffdio_zeropage zero = {};
  zero.range.start = Addr(dst);
  zero.range.len = len;
  zero.mode = mode;
  if (int e = Injected(Site::kZeroPage)) return {0, Failed(e)};
  const int ret = ioctl(uffd, UFFDIO_ZEROPAGE, &zero);
  const int error = errno;
  if (ret != 0 && error == EEXIST) {
    return FirstPagePresent(uffd, dst, len,
                            (mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE) == 0);
  }
  return Counted(FillResult(ret, error, zero.zeropage, len));
}

OsResult<size_t> Move(int uffd, void* dst, void* src, size_t len,
                      uint64_t mode) {
  uffdio_move move = {};
  move.dst = Addr(dst);
  move.src = Addr(src);
  move.len = len;
  move.mode = mode;
  if (int e = Injected(Site::kMove)) {
    return {0, e == EBUSY || e == ENOENT ? e : Failed(e)};
  }
  const int ret = ioctl(uffd, UFFDIO_MOVE, &move);
  const OsResult<size_t> r = FillResult(ret, errno, move.move, len);
  if (r.ok()) return r;
  const OsResult<size_t> counted = CountUnreportedMoves(
      static_cast<char*>(dst), static_cast<char*>(src), len, r);
  // EBUSY (a page shared with a child) and ENOENT (a hole) are answers about
  // the page, not failures.
  if (counted.error == EBUSY || counted.error == ENOENT) return counted;
  return Counted(counted);
}

OsStatus WriteProtect(int uffd, void* addr, size_t len, bool protect,
                      bool dont_wake) {
  uffdio_writeprotect wp = {};
  wp.range.start = Addr(addr);
  wp.range.len = len;
  wp.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
            (dont_wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
  return {Checked(ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0)};
}

OsStatus Wake(int uffd, void* addr, size_t len) {
  if (int e = Injected(Site::kWake)) return {Failed(e)};
  uffdio_range range = {Addr(addr), len};
  return {Checked(ioctl(uffd, UFFDIO_WAKE, &range) == 0)};
}

OsResult<size_t> ReadEvents(int uffd, uffd_msg* out, size_t max) {
  if (max == 0) return {0, EINVAL};
  for (;;) {
    if (int e = Injected(Site::kReadEvents)) {
      if (Failed(e) == EINTR) continue;
      return {0, e};
    }
    const ssize_t n = read(uffd, out, max * sizeof(uffd_msg));
    if (n >= 0) return {static_cast<size_t>(n) / sizeof(uffd_msg), 0};
    if (errno == EINTR) continue;
    return {0, errno == EAGAIN ? EAGAIN : Failed(errno)};
  }
}

OsResult<bool> WaitReadable(int fd, int timeout_ms) {
  pollfd p = {fd, POLLIN, 0};
  const int n = poll(&p, 1, timeout_ms);
  if (n < 0) return {false, errno};
  return {n > 0 && (p.revents & POLLIN) != 0, 0};
}

// ---------------------------------------------------------------------------
// PAGEMAP_SCAN.

absl::StatusOr<int> OpenPagemap() {
  int fd = -1;
  if (int e = Injected(Site::kOpenPagemap)) {
    errno = e;
  } else {
    fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot open /proc/self/pagemap: ", ErrnoName(Failed(errno))));
  }
  return fd;
}

bool PagemapScanSupported(int pagemap_fd) {
  return PageMapScan(pagemap_fd, nullptr, 0, ScanRequest{}, nullptr, 0).ok();
}

OsResult<ScanResult> PageMapScan(int pagemap_fd, const void* start, size_t len,
                                 const ScanRequest& request, page_region* out,
                                 size_t out_len) {
  pm_scan_arg arg = {};
  arg.size = sizeof(arg);
  arg.flags = request.flags;
  arg.start = Addr(start);
  arg.end = Addr(start) + len;
  arg.vec = Addr(out);
  arg.vec_len = out_len;
  arg.max_pages = request.max_pages;
  arg.category_inverted = request.category_inverted;
  arg.category_mask = request.category_mask;
  arg.category_anyof_mask = request.category_anyof_mask;
  arg.return_mask = request.return_mask;
  // The support probe (a zero-length scan) is not a data-path call.
  if (len != 0) {
    if (int e = Injected(Site::kPagemapScan)) return {{}, Failed(e)};
  }
  const int n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
  if (n < 0) return {{}, len != 0 ? Failed(errno) : errno};
  return {{static_cast<size_t>(n), static_cast<uintptr_t>(arg.walk_end)}, 0};
}

OsResult<ScanResult> ScanWrittenAndProtect(int pagemap_fd, const void* start,
                                           size_t len, page_region* out,
                                           size_t out_len) {
  ScanRequest request;
  request.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  // Exactly PAGE_IS_WRITTEN in both masks: the kernel's fast path.
  request.category_mask = PAGE_IS_WRITTEN;
  request.return_mask = PAGE_IS_WRITTEN;
  return PageMapScan(pagemap_fd, start, len, request, out, out_len);
}

OsResult<ScanResult> QueryPages(int pagemap_fd, const void* start, size_t len,
                                uint64_t required, uint64_t report,
                                page_region* out, size_t out_len) {
  ScanRequest request;
  request.category_mask = required;
  request.return_mask = report;
  return PageMapScan(pagemap_fd, start, len, request, out, out_len);
}

// ---------------------------------------------------------------------------
// The pool's memory.

namespace {

// Each run is its own mapping: the kernel merges neighbouring anonymous
// mappings, and a freed run goes straight back to the OS.
class PoolPages final : public pool::PageSource {
 public:
  void* MapPages(size_t pages) override {
    if (int e = Injected(Site::kPoolMap)) {
      (void)Failed(e);
      return nullptr;
    }
    void* p = mmap(nullptr, pages * kPageSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) return p;
    (void)Failed(errno);
    return nullptr;
  }
  void UnmapPages(void* start, size_t pages) override {
    (void)Release(start, pages * kPageSize);
  }
};

}  // namespace

pool::PageSource& PoolPageSource() {
  // In static storage, built on first use: no heap, no static constructor,
  // never destroyed (the pool outlives static destructors).
  alignas(PoolPages) static unsigned char storage[sizeof(PoolPages)];
  static pool::PageSource* source = new (storage) PoolPages();
  return *source;
}

// ---------------------------------------------------------------------------
// Files.

OsResult<int> OpenUnlinkedFile(const char* path) {
  if (int e = Injected(Site::kFileOpen)) return {-1, Failed(e)};
  struct stat st;
  int fd;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  } else {
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) unlink(path);
  }
  if (fd < 0) return {-1, Failed(errno)};
  return {fd, 0};
}

OsStatus WriteAt(int fd, const void* data, size_t size, off_t offset) {
  size_t done = 0;
  while (done < size) {
    if (int e = Injected(Site::kFileWrite)) {
      if (Failed(e) == EINTR) continue;
      return {e};
    }
    const ssize_t n = pwrite(fd, static_cast<const char*>(data) + done,
                             size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {Failed(errno)};
    if (n == 0) return {Failed(EIO)};
    done += static_cast<size_t>(n);
  }
  return {};
}

OsStatus ReadAt(int fd, void* data, size_t size, off_t offset) {
  size_t done = 0;
  while (done < size) {
    if (int e = Injected(Site::kFileRead)) {
      if (Failed(e) == EINTR) continue;
      return {e};
    }
    const ssize_t n = pread(fd, static_cast<char*>(data) + done, size - done,
                            offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {Failed(errno)};
    if (n == 0) return {Failed(EIO)};  // past the end: never written
    done += static_cast<size_t>(n);
  }
  return {};
}

OsStatus CopyFile(int from, int to, size_t bytes) {
  if (int e = Injected(Site::kFileCopy)) return {Failed(e)};
  loff_t in = 0;
  loff_t out = 0;
  while (bytes > 0) {
    const ssize_t n = copy_file_range(from, &in, to, &out, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {Failed(errno)};
    if (n == 0) break;  // past the end of a sparse tail: nothing to copy
    bytes -= static_cast<size_t>(n);
  }
  return {};
}

OsStatus MakePipe(int fds[2]) {
  if (int e = Injected(Site::kPipe)) return {Failed(e)};
  return {Checked(pipe2(fds, O_CLOEXEC) == 0)};
}

// A pipe reports POLLHUP, not POLLIN, when its last writer is gone.
OsResult<bool> WaitWritersGone(int fd, int timeout_ms) {
  pollfd p = {fd, POLLIN, 0};
  for (;;) {
    const int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {false, Failed(errno)};
    return {n > 0 && (p.revents & POLLHUP) != 0, 0};
  }
}

// ---------------------------------------------------------------------------
// Threads and clocks.

OsStatus CreateThread(pthread_t* thread, const pthread_attr_t* attr,
                      void* (*main)(void*), void* arg) {
  if (int e = Injected(Site::kThreadCreate)) return {Failed(e)};
  const int error = pthread_create(thread, attr, main, arg);
  return {error == 0 ? 0 : Failed(error)};
}

OsStatus PinCurrentThreadToCpu(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return {EINVAL};
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int e = Injected(Site::kPin)) return {Failed(e)};
  return {Checked(sched_setaffinity(0, sizeof(set), &set) == 0)};
}

int NumCpus() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

int CurrentCpu() { return sched_getcpu(); }

pid_t GetTid() { return gettid(); }

namespace {
uint64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t ThreadCpuTimeNs() { return ClockNs(CLOCK_THREAD_CPUTIME_ID); }

uint64_t ThreadCpuTimeNs(pthread_t thread) {
  clockid_t clock;
  if (pthread_getcpuclockid(thread, &clock) != 0) return 0;
  return ClockNs(clock);
}

uint64_t MonotonicNowNs() { return ClockNs(CLOCK_MONOTONIC); }

// ---------------------------------------------------------------------------
// Credentials. Raw capget/capset: glibc declares no wrapper for them.

OsResult<ThreadCapabilities> GetThreadCapabilities() {
  if (int e = Injected(Site::kCapGet)) return {{}, Failed(e)};
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &header, data) != 0) return {{}, Failed(errno)};
  const int securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (securebits < 0) return {{}, Failed(errno)};
  ThreadCapabilities caps;
  for (int i = 0; i < 2; ++i) {
    caps.effective[i] = data[i].effective;
    caps.permitted[i] = data[i].permitted;
    caps.inheritable[i] = data[i].inheritable;
  }
  caps.securebits = securebits;
  return {caps, 0};
}

OsStatus SetThreadCapabilities(const ThreadCapabilities& caps) {
  if (int e = Injected(Site::kCapSet)) return {Failed(e)};
  int error = 0;
  const int securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (securebits >= 0 && securebits != caps.securebits) {
    // Keep-caps alone needs no privilege; the other bits need CAP_SETPCAP.
    const bool keep_caps = (caps.securebits & SECBIT_KEEP_CAPS) != 0;
    const int rc = (securebits ^ caps.securebits) == SECBIT_KEEP_CAPS
                       ? prctl(PR_SET_KEEPCAPS, keep_caps, 0, 0, 0)
                       : prctl(PR_SET_SECUREBITS, caps.securebits, 0, 0, 0);
    if (rc != 0) error = errno;
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  for (int i = 0; i < 2; ++i) {
    data[i].effective = caps.effective[i];
    data[i].permitted = caps.permitted[i];
    data[i].inheritable = caps.inheritable[i];
  }
  if (syscall(SYS_capset, &header, data) != 0 && error == 0) error = errno;
  return {error == 0 ? 0 : Failed(error)};
}

}  // namespace coldheap::os
