// The shim's OS layer: every primitive coldheap needs from the kernel, behind
// one small API, in one place (as mimalloc's src/prim). mmap and madvise, the
// userfaultfd ioctls, PAGEMAP_SCAN, and the few thread and clock calls the
// fault handlers and the evictor use. Kernel-version differences live here
// and in uffd_compat.h, so the rest of the shim reads as logic.
//
// Allocation-free. Everything here except the set-up functions that return
// absl::StatusOr (OpenUserfaultfd, OpenPagemap, DescribeFeatures) is called
// from malloc paths and from the fault handler, where calling malloc could
// deadlock or recurse into the shim. So errors come back as small values:
// OsStatus / OsResult<T> carry an errno, 0 meaning success, and never
// allocate. The set-up functions build a message, which allocates: call them
// once, while it is safe to allocate.
//
// Nothing here touches memory in the managed region except through the
// kernel (ioctls and madvise), so a fault handler using this layer never
// faults on the region itself.
//
// Kernel behaviours this layer relies on, each proven on the running kernel
// by tests/shim/os_test.cc:
//  - UFFDIO_COPY / UFFDIO_ZEROPAGE onto a present page fail with EEXIST
//    (another handler got there first): Copy and ZeroPage count it as done
//    and wake the waiters. A multi-page fill stops at the first present page
//    with EAGAIN, reporting the bytes filled.
//  - A range registered for write-protect only zero-fills a page that was
//    write-protected and then dropped, silently, on the next write. Register
//    missing + write-protect together (the default below): the touch is then
//    a missing fault.
//  - UFFDIO_MOVE fails with EBUSY on a page that is, or ever was since its
//    last write, shared copy-on-write with a forked child: fork clears the
//    page's anon-exclusive mark, and only a write fault sets it again, so the
//    page stays unmovable after the child exits or execs. Moving from a hole
//    needs UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES (else ENOENT). Moving into a page
//    that holds a uffd-wp marker (see ScanWrittenAndProtect) fails with
//    EEXIST, where UFFDIO_COPY succeeds.
//  - With UFFD_FEATURE_WP_ASYNC the kernel resolves write-protect faults
//    itself; PAGEMAP_SCAN reports the written pages and can protect them
//    again in the same call.
//  - Kernel-mode accesses (read(2) into a missing page) raise an ordinary
//    missing fault, served by the handler: no EFAULT, because the userfaultfd
//    is never opened with UFFD_USER_MODE_ONLY and never uses
//    UFFD_FEATURE_SIGBUS.
#ifndef COLDHEAP_SHIM_OS_H_
#define COLDHEAP_SHIM_OS_H_

#include <pthread.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "pool/page_source.h"
#include "shim/uffd_compat.h"

namespace coldheap::os {

inline constexpr size_t kPageSize = 4096;
inline constexpr size_t kHugePageSize = size_t{2} << 20;

// ---------------------------------------------------------------------------
// Results. `error` is an errno value; 0 means success.

struct [[nodiscard]] OsStatus {
  int error = 0;
  bool ok() const { return error == 0; }
};

// For range operations `value` is the progress made (bytes done from the
// start of the range) and is meaningful even when `error` is set.
template <typename T>
struct [[nodiscard]] OsResult {
  T value{};
  int error = 0;
  bool ok() const { return error == 0; }
};

// "EEXIST" for EEXIST: a static string, safe anywhere (strerror is neither
// thread-safe nor allocation-free). "E?" for an unknown value.
const char* ErrnoName(int error);

OsStatus CloseFd(int fd);

// ---------------------------------------------------------------------------
// Failures.

// The kernel calls the data path makes, one site each. In the test build
// (bazel --config=faultinject) any of them can be made to fail on purpose
// (see fault_injector.h); the release library has no injector at all.
enum class Site : uint8_t {
  kReserve,       // Reserve: mmap
  kRelease,       // Release: munmap
  kDontNeed,      // DontNeed: madvise
  kRegister,      // Register: UFFDIO_REGISTER
  kCopy,          // Copy: UFFDIO_COPY
  kZeroPage,      // ZeroPage: UFFDIO_ZEROPAGE
  kMove,          // Move: UFFDIO_MOVE
  kWake,          // Wake: UFFDIO_WAKE
  kReadEvents,    // ReadEvents: read(userfaultfd)
  kPagemapScan,   // PageMapScan and its wrappers: PAGEMAP_SCAN
  kOpenUffd,      // OpenUserfaultfd: userfaultfd(2)
  kOpenPagemap,   // OpenPagemap: open(/proc/self/pagemap)
  kPin,           // PinCurrentThreadToCpu: sched_setaffinity
  kPoolMap,       // PoolPageSource().MapPages: mmap
  kFileOpen,      // OpenUnlinkedFile: open
  kFileWrite,     // WriteAt: pwrite
  kFileRead,      // ReadAt: pread
  kFileCopy,      // CopyFile: copy_file_range
  kThreadCreate,  // CreateThread: pthread_create
  kPipe,          // MakePipe: pipe2
  kCapGet,        // GetThreadCapabilities: capget, prctl
  kCapSet,        // SetThreadCapabilities: prctl, capset
  kCount,
};

// "move" for Site::kMove: the name COLDHEAP_TEST_FAULT uses.
const char* SiteName(Site site);

// Failures os:: calls returned to the shim since start (inherited by a
// forked child): each is an errno the caller had to handle, beyond the
// protocol answers a call documents as progress (a fill's EAGAIN after some
// pages, an EEXIST counted as done, UFFDIO_MOVE's EBUSY and ENOENT).
uint64_t FailureCount();
// Of those, the ones the test build injected (0 in the release build).
uint64_t InjectedFailureCount();

// ---------------------------------------------------------------------------
// Memory.

// Reserves `bytes` (rounded up to whole pages) of private anonymous memory,
// readable and writable, MAP_NORESERVE (no commit charge: only touched pages
// cost memory), starting on a 2 MiB boundary (over-reserved, then trimmed).
// Transparent huge pages are turned off for it (NoHugePages): see there.
OsResult<void*> Reserve(size_t bytes);

// Unmaps [addr, addr + bytes).
OsStatus Release(void* addr, size_t bytes);

// MADV_DONTNEED: frees the pages; the next touch is a missing fault (in a
// registered range) or reads zeros.
OsStatus DontNeed(void* addr, size_t bytes);

// MADV_NOHUGEPAGE. coldheap tracks, evicts and restores 4 KiB pages; a THP
// would fight that: dropping or moving one 4 KiB page of it forces a split,
// one write marks the whole 2 MiB written under write-protect tracking (so
// PAGEMAP_SCAN sees 512 pages hot), khugepaged could collapse a range again
// and refill evicted pages, and a first touch would allocate 2 MiB where the
// program wrote 4 KiB. Where THP is "always", the region would get them.
OsStatus NoHugePages(void* addr, size_t bytes);

// ---------------------------------------------------------------------------
// Userfaultfd.

// Features coldheap asks for when available:
//  WP_ASYNC   write tracking without a fault per written page, read with
//             PAGEMAP_SCAN (implies WP_UNPOPULATED and PAGEMAP_SCAN support).
//  MOVE       UFFDIO_MOVE: evict a page by moving it out, no copy, no lost
//             write.
//  THREAD_ID  the faulting thread's id in each message.
// Never asked for: EVENT_FORK (a child sets up its own userfaultfd),
// EVENT_REMOVE (madvise(MADV_DONTNEED) on the region would block until a
// handler reads the event), SIGBUS (turns kernel-mode faults into EFAULT).
inline constexpr uint64_t kDefaultFeatures =
    UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE | UFFD_FEATURE_THREAD_ID;

enum class UffdSource {
  kAny,      // userfaultfd(2), then /dev/userfaultfd
  kSyscall,  // userfaultfd(2) only
  kDevice,   // /dev/userfaultfd + USERFAULTFD_IOC_NEW only
};

struct UffdOptions {
  // Asked for where the kernel offers them; the rest is left out.
  uint64_t wanted_features = kDefaultFeatures;
  // Opening fails, naming the feature, if the kernel lacks one of these.
  uint64_t required_features = 0;
  // Handlers block in read(2) (the fastest hand-off measured here: one
  // handler per CPU, each pinned, blocking). Non-blocking is for pollers.
  bool nonblocking = false;
  UffdSource source = UffdSource::kAny;
};

struct Userfaultfd {
  int fd = -1;
  uint64_t features = 0;   // granted: asked for and offered
  uint64_t available = 0;  // every feature the kernel offers
  uint64_t ioctls = 0;     // 1 << _UFFDIO_* the fd accepts
  bool via_device = false;  // opened through /dev/userfaultfd

  bool Has(uint64_t feature) const { return (features & feature) == feature; }
  // PAGEMAP_SCAN came with WP_ASYNC (Linux 6.7); see also
  // PagemapScanSupported.
  bool CanTrackWrites() const { return Has(UFFD_FEATURE_WP_ASYNC); }
};

// Opens a userfaultfd (O_CLOEXEC, never UFFD_USER_MODE_ONLY: faults taken by
// the kernel on the program's behalf, in read(2) or a futex, must reach the
// handler) and does the UFFDIO_API handshake. The handshake can happen once
// per fd and fails on an unknown feature bit, so the offered set is learnt
// first on a throw-away fd. The error message says why: userfaultfd not
// permitted (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE),
// /dev/userfaultfd not accessible, no userfaultfd in this kernel, or a
// required feature missing.
absl::StatusOr<Userfaultfd> OpenUserfaultfd(const UffdOptions& options = {});

// "WP_ASYNC|MOVE|THREAD_ID"; unknown bits as hex. Set-up only (allocates).
std::string DescribeFeatures(uint64_t features);

inline constexpr uint64_t kRegisterMissingAndWp =
    UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;

// Registers [addr, addr + len) (page-aligned). `value` is the set of
// 1 << _UFFDIO_* ioctls available on the range (COPY, ZEROPAGE, WAKE,
// WRITEPROTECT, MOVE...). Missing + write-protect by default: see the
// behaviours at the top.
OsResult<uint64_t> Register(int uffd, void* addr, size_t len,
                            uint64_t mode = kRegisterMissingAndWp);
OsStatus Unregister(int uffd, void* addr, size_t len);

// The fills below return in `value` how many bytes from the start of the
// range are now in place, and in `error`:
//   0       the whole range is in place;
//   EAGAIN  the kernel stopped early, typically at a present page; carry on
//           from dst + value (nothing was done if value is 0, e.g. while the
//           address space was changing: try again);
//   other   nothing more was done (ENOENT: range no longer registered,
//           ESRCH: the process is exiting, EFAULT: bad source...).
// A first page found present (EEXIST) counts as in place: another handler
// filled it. The waiters on it are woken (unless DONTWAKE) and `value`
// covers it. Unless DONTWAKE, threads waiting on the filled pages are woken.

// UFFDIO_COPY from `src` (any readable memory). `mode`:
// UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_WP (map write-protected).
OsResult<size_t> Copy(int uffd, void* dst, const void* src, size_t len,
                      uint64_t mode = 0);

// UFFDIO_ZEROPAGE: maps the shared zero page (no memory until written).
// `mode`: UFFDIO_ZEROPAGE_MODE_DONTWAKE.
OsResult<size_t> ZeroPage(int uffd, void* dst, size_t len, uint64_t mode = 0);

// UFFDIO_MOVE: moves the pages of [src, src + len) to dst, which must be in a
// range registered with this userfaultfd and hold no pages (nor uffd-wp
// markers). The source range becomes missing: its next touch faults. No
// copy, and a concurrent write to src either lands before the move (and
// moves) or faults after it. `mode`: UFFDIO_MOVE_MODE_DONTWAKE,
// UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES (holes are skipped and counted as moved).
// `value`: bytes moved. `error`: EAGAIN (stopped early, carry on), EBUSY (the
// next page is shared copy-on-write, see above: copy it instead), EEXIST (dst
// not empty), ENOENT (a hole without ALLOW_SRC_HOLES), EINVAL (ranges not
// movable, e.g. dst not registered). `value` is checked against the page
// tables when the kernel reports an error: pages it moved without counting
// them are counted (and the error becomes EAGAIN, or none if all moved).
OsResult<size_t> Move(int uffd, void* dst, void* src, size_t len,
                      uint64_t mode = 0);

// UFFDIO_WRITEPROTECT: sets (protect) or clears write protection. Clearing
// wakes threads waiting on a synchronous write-protect fault unless
// `dont_wake`.
OsStatus WriteProtect(int uffd, void* addr, size_t len, bool protect,
                      bool dont_wake = false);

// UFFDIO_WAKE: wakes threads waiting on faults in the range.
OsStatus Wake(int uffd, void* addr, size_t len);

// Reads up to `max` messages (at least one) into `out`. On a blocking fd,
// blocks until one arrives; on a non-blocking one, EAGAIN when none is
// pending. EINTR is retried.
OsResult<size_t> ReadEvents(int uffd, uffd_msg* out, size_t max);

// Waits up to `timeout_ms` (-1: forever) for `fd` to be readable.
// `value`: readable. EINTR is returned, not retried.
OsResult<bool> WaitReadable(int fd, int timeout_ms);

// ---------------------------------------------------------------------------
// PAGEMAP_SCAN (Linux 6.7).

// Opens /proc/self/pagemap (O_RDONLY|O_CLOEXEC). The file is bound to the
// address space of the process that opened it: after fork the child must
// open its own, or it scans (and write-protects) its parent.
absl::StatusOr<int> OpenPagemap();

// True when the kernel implements PAGEMAP_SCAN on this pagemap fd (a
// zero-length scan; older kernels answer ENOTTY).
bool PagemapScanSupported(int pagemap_fd);

struct ScanRequest {
  uint64_t flags = 0;                // PM_SCAN_WP_MATCHING, ...
  uint64_t category_mask = 0;        // pages must have all of these
  uint64_t category_inverted = 0;    // categories that match when absent
  uint64_t category_anyof_mask = 0;  // pages must have one of these
  uint64_t return_mask = 0;          // categories reported per region
  uint64_t max_pages = 0;            // stop after this many pages; 0: none
};

struct ScanResult {
  size_t regions = 0;  // page_regions written to the caller's array
  // Where the walk stopped: the end of the range when complete, earlier when
  // the array filled up or max_pages was reached. Continue from here.
  uintptr_t walk_end = 0;
};

// PAGEMAP_SCAN over [start, start + len) with `request`, writing runs of
// pages with equal reported categories into out[0, out_len).
OsResult<ScanResult> PageMapScan(int pagemap_fd, const void* start, size_t len,
                                 const ScanRequest& request, page_region* out,
                                 size_t out_len);

// The tracking scan: reports the pages written since they were last
// protected and write-protects them again, in one atomic step
// (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, category PAGE_IS_WRITTEN).
// The range must be registered for write-protect on a userfaultfd with
// WP_ASYNC (EPERM otherwise). Note: an empty page without a uffd-wp marker
// (dropped with DontNeed or moved out since the last scan) is reported as
// written, once, and gets a marker; a marker is not a page, but UFFDIO_MOVE
// into it fails with EEXIST (restore such pages with Copy).
OsResult<ScanResult> ScanWrittenAndProtect(int pagemap_fd, const void* start,
                                           size_t len, page_region* out,
                                           size_t out_len);

// A query that changes nothing: pages having all categories in `required`
// (e.g. PAGE_IS_PRESENT), reported with the categories in `report` (e.g.
// PAGE_IS_PRESENT | PAGE_IS_WRITTEN).
OsResult<ScanResult> QueryPages(int pagemap_fd, const void* start, size_t len,
                                uint64_t required, uint64_t report,
                                page_region* out, size_t out_len);

// ---------------------------------------------------------------------------
// The pool's memory.

// Runs of whole zero-filled pages for the compressed pool: anonymous private
// mmap, one mapping per run. Thread-safe; never allocates. The shim's pool
// takes its pages from here, so the pool's growth is an os:: call like the
// others (pool::OsPageSource is the same without this layer, for tools).
pool::PageSource& PoolPageSource();

// ---------------------------------------------------------------------------
// Files (the writeback file).

// Opens an unnamed file for reading and writing: O_TMPFILE in `path` when it
// is a directory, else `path` created (O_EXCL, 0600) and unlinked at once.
// `value`: the fd (O_CLOEXEC).
OsResult<int> OpenUnlinkedFile(const char* path);

// Whole pwrite/pread of `size` bytes at `offset` (EINTR and short transfers
// carried on). A read past the end fails with EIO: nothing written there.
OsStatus WriteAt(int fd, const void* data, size_t size, off_t offset);
OsStatus ReadAt(int fd, void* data, size_t size, off_t offset);

// Copies the first `bytes` of `from` into `to` (copy_file_range); the end
// of a sparse file (EOF before `bytes`) is not an error.
OsStatus CopyFile(int from, int to, size_t bytes);

// A pipe, both ends O_CLOEXEC: `fds` gets {read end, write end}. A forked
// child holds the write end until it no longer reads the parent's file.
OsStatus MakePipe(int fds[2]);
// Whether every write end of the pipe whose read end is `fd` is closed (its
// holders closed it or exited), waiting up to `timeout_ms` (-1: no limit).
OsResult<bool> WaitWritersGone(int fd, int timeout_ms);

// ---------------------------------------------------------------------------
// Threads and clocks.

// pthread_create. `value` unused; `error` what pthread_create returned.
OsStatus CreateThread(pthread_t* thread, const pthread_attr_t* attr,
                      void* (*main)(void*), void* arg);

// Pins the calling thread to `cpu` (sched_setaffinity).
OsStatus PinCurrentThreadToCpu(int cpu);
// CPUs online (at least 1).
int NumCpus();
// The CPU the calling thread runs on now (sched_getcpu), -1 if unknown.
int CurrentCpu();
pid_t GetTid();
// CPU time consumed by the calling thread (CLOCK_THREAD_CPUTIME_ID).
uint64_t ThreadCpuTimeNs();
// CPU time consumed by `thread` (pthread_getcpuclockid); 0 if unknown.
uint64_t ThreadCpuTimeNs(pthread_t thread);
// CLOCK_MONOTONIC.
uint64_t MonotonicNowNs();

// ---------------------------------------------------------------------------
// Credentials. Capability sets and securebits (PR_SET_KEEPCAPS among them)
// belong to one thread, not to the process: these act on the calling thread.

struct ThreadCapabilities {
  uint32_t effective[2] = {};
  uint32_t permitted[2] = {};
  uint32_t inheritable[2] = {};
  int securebits = 0;  // PR_GET_SECUREBITS, SECBIT_KEEP_CAPS included
};

OsResult<ThreadCapabilities> GetThreadCapabilities();
// Securebits first (while this thread may still hold CAP_SETPCAP), then
// the three sets. Fails with EPERM if that would raise a set beyond what
// the thread is allowed; the first error is returned, the rest still tried.
OsStatus SetThreadCapabilities(const ThreadCapabilities& caps);

}  // namespace coldheap::os

#endif  // COLDHEAP_SHIM_OS_H_
